//! The lifecycle of a model (one workload, container and image digest), as a
//! pure function of its record and the time.
//!
//! ```text
//!   learning ──(period over, quiet)──► dry-run ──(period over, quiet; or approval)──► active
//!      ▲                                  │                                               │
//!      └────────────── relearn ───────────┴───────────────────────────────────────────────┘
//!   any ──(no pod for archive-after)──► archived ──(a pod comes back)──► the state it had
//! ```
//!
//! - `learning`: the sidecars allow everything and report what they see; the
//!   period runs from the first sync of any replica, so replicas share it.
//! - `dry-run`: the sidecars alert and allow; what is outside the model is a
//!   *candidate*, shown, not learned. A model made for a new image digest
//!   starts here from its predecessor's items, and its candidates are the
//!   difference the new image brings: they join the model when it is promoted.
//! - `active`: the mode the workload asked for (alert or enforce).
//! - Quiet: promotion also waits until nothing new was seen for the quiet
//!   period, so a workload still discovering its behaviour keeps learning.
//! - With `require_approval`, dry-run ends only with an operator's approval.

use std::fmt;
use std::str::FromStr;

use nfguard_common::Mode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Learning,
    DryRun,
    Active,
    Archived,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Learning => "learning",
            State::DryRun => "dry-run",
            State::Active => "active",
            State::Archived => "archived",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = String;
    fn from_str(s: &str) -> Result<State, String> {
        match s {
            "learning" => Ok(State::Learning),
            "dry-run" => Ok(State::DryRun),
            "active" => Ok(State::Active),
            "archived" => Ok(State::Archived),
            _ => Err(format!(
                "unknown state {s:?}: expected learning, dry-run, active or archived"
            )),
        }
    }
}

/// What the lifecycle needs of a model's record (times in unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lifecycle {
    pub state: State,
    pub state_since_ms: i64,
    /// When learning may end (start + period, moved by "extend learning").
    pub learning_until_ms: i64,
    pub learning_period_ms: i64,
    pub dry_run_period_ms: i64,
    pub quiet_period_ms: i64,
    /// The last time an item new to the model (learning) or a new candidate (dry-run) appeared.
    pub last_new_ms: i64,
    pub require_approval: bool,
    /// alert or enforce: the mode once active.
    pub target: Mode,
}

/// A change of state and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub to: State,
    pub reason: String,
}

/// Defaults when a workload does not say.
pub const DEFAULT_LEARNING_MS: i64 = 10 * 60 * 1000;
pub const DEFAULT_DRY_RUN_MS: i64 = 24 * 3600 * 1000;
/// The quiet period is a quarter of the learning period, at most this.
pub const MAX_QUIET_MS: i64 = 10 * 60 * 1000;

/// The quiet period for a learning period.
pub fn quiet_for(learning_ms: i64) -> i64 {
    (learning_ms / 4).clamp(0, MAX_QUIET_MS)
}

fn secs(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

impl Lifecycle {
    /// The mode a sidecar runs in now.
    pub fn mode(&self) -> Mode {
        match self.state {
            State::Learning => Mode::Learn,
            State::DryRun => Mode::Alert,
            State::Active | State::Archived => self.target,
        }
    }

    /// The automatic transition due at `now`, if any.
    pub fn step(&self, now: i64) -> Option<Transition> {
        let quiet_for = now - self.last_new_ms;
        let quiet = quiet_for >= self.quiet_period_ms;
        match self.state {
            State::Learning if now >= self.learning_until_ms && quiet => Some(Transition {
                to: State::DryRun,
                reason: format!(
                    "learning period over and nothing new for {}",
                    secs(quiet_for)
                ),
            }),
            State::DryRun
                if !self.require_approval
                    && now >= self.state_since_ms + self.dry_run_period_ms
                    && quiet =>
            {
                Some(Transition {
                    to: State::Active,
                    reason: format!(
                        "dry-run period over and no new candidate for {}",
                        secs(quiet_for)
                    ),
                })
            }
            _ => None,
        }
    }

    /// One sentence for a person: where the model stands and what it waits for.
    pub fn detail(&self, now: i64) -> String {
        let quiet_left = self.quiet_period_ms - (now - self.last_new_ms);
        match self.state {
            State::Learning if now < self.learning_until_ms => {
                format!("learning: {} left", secs(self.learning_until_ms - now))
            }
            State::Learning => format!(
                "learning: period over, waiting for {} without a new item",
                secs(quiet_left)
            ),
            State::DryRun => {
                let end = self.state_since_ms + self.dry_run_period_ms;
                if self.require_approval {
                    "dry-run: waiting for approval".to_string()
                } else if now < end {
                    format!("dry-run: {} left", secs(end - now))
                } else {
                    format!(
                        "dry-run: period over, waiting for {} without a new candidate",
                        secs(quiet_left)
                    )
                }
            }
            State::Active => format!("active in {} mode", self.target),
            State::Archived => "archived: no pod of this image reports".to_string(),
        }
    }

    /// Seconds of learning left (for the overview), zero when over.
    pub fn learning_left_ms(&self, now: i64) -> i64 {
        match self.state {
            State::Learning => (self.learning_until_ms - now).max(0),
            _ => 0,
        }
    }
}

/// An operator's action on a model, checked against its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Accept the model as it is: active at once.
    Approve,
    /// Forget what was learned (static and manual items stay), learn again.
    Relearn,
    /// Learn for longer (a dry-run model goes back to learning).
    Extend { by_ms: i64 },
}

/// An action that does not apply to the model's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a model in state {state}: {why}")]
pub struct Refused {
    pub action: &'static str,
    pub state: State,
    pub why: &'static str,
}

/// The record after `action` at `now` (pure; the caller stores it and the audit entry).
pub fn apply(lc: &Lifecycle, action: &Action, now: i64) -> Result<Lifecycle, Refused> {
    let mut next = lc.clone();
    match action {
        Action::Approve => {
            if lc.state == State::Active {
                return Err(Refused {
                    action: "approve",
                    state: lc.state,
                    why: "it is already active",
                });
            }
            if lc.state == State::Archived {
                return Err(Refused {
                    action: "approve",
                    state: lc.state,
                    why: "no pod runs it",
                });
            }
            next.state = State::Active;
            next.state_since_ms = now;
        }
        Action::Relearn => {
            next.state = State::Learning;
            next.state_since_ms = now;
            next.learning_until_ms = now + lc.learning_period_ms;
            next.last_new_ms = now;
        }
        Action::Extend { by_ms } => {
            if *by_ms <= 0 {
                return Err(Refused {
                    action: "extend learning of",
                    state: lc.state,
                    why: "the extension must be positive",
                });
            }
            match lc.state {
                State::Learning => next.learning_until_ms = lc.learning_until_ms.max(now) + by_ms,
                State::DryRun => {
                    next.state = State::Learning;
                    next.state_since_ms = now;
                    next.learning_until_ms = now + by_ms;
                }
                _ => {
                    return Err(Refused {
                        action: "extend learning of",
                        state: lc.state,
                        why: "only a learning or dry-run model learns; relearn an active one",
                    })
                }
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learning(now: i64) -> Lifecycle {
        Lifecycle {
            state: State::Learning,
            state_since_ms: now,
            learning_until_ms: now + 10_000,
            learning_period_ms: 10_000,
            dry_run_period_ms: 5_000,
            quiet_period_ms: 2_000,
            last_new_ms: now,
            require_approval: false,
            target: Mode::Enforce,
        }
    }

    #[test]
    fn learning_ends_on_time_only_when_quiet_then_dry_run_ends_on_time() {
        let mut lc = learning(0);
        assert_eq!(lc.mode(), Mode::Learn);
        assert_eq!(lc.step(9_999), None, "period not over");
        lc.last_new_ms = 9_000;
        assert_eq!(lc.step(10_500), None, "something new 1.5 s ago");
        assert!(
            lc.detail(10_500).contains("waiting for 1s"),
            "{}",
            lc.detail(10_500)
        );
        let t = lc.step(11_000).expect("quiet for 2 s");
        assert_eq!(t.to, State::DryRun);
        lc.state = State::DryRun;
        lc.state_since_ms = 11_000;
        assert_eq!(lc.mode(), Mode::Alert);
        assert_eq!(lc.step(15_999), None);
        assert_eq!(lc.step(16_000).unwrap().to, State::Active);
        lc.state = State::Active;
        assert_eq!(lc.mode(), Mode::Enforce);
        assert_eq!(lc.step(1_000_000), None, "active stays active");
    }

    #[test]
    fn approval_required_holds_dry_run_until_an_operator_approves() {
        let mut lc = learning(0);
        lc.state = State::DryRun;
        lc.require_approval = true;
        assert_eq!(lc.step(1_000_000), None);
        assert_eq!(lc.detail(1_000_000), "dry-run: waiting for approval");
        let next = apply(&lc, &Action::Approve, 1_000_000).unwrap();
        assert_eq!((next.state, next.mode()), (State::Active, Mode::Enforce));
        assert!(apply(&next, &Action::Approve, 1).is_err(), "already active");
    }

    #[test]
    fn relearn_and_extend_move_learning_as_an_operator_expects() {
        let lc = learning(0);
        let ext = apply(&lc, &Action::Extend { by_ms: 5_000 }, 1_000).unwrap();
        assert_eq!(ext.learning_until_ms, 15_000);
        let mut dry = lc.clone();
        dry.state = State::DryRun;
        let back = apply(&dry, &Action::Extend { by_ms: 3_000 }, 20_000).unwrap();
        assert_eq!(
            (back.state, back.learning_until_ms),
            (State::Learning, 23_000)
        );
        let mut active = lc.clone();
        active.state = State::Active;
        assert!(apply(&active, &Action::Extend { by_ms: 1 }, 0).is_err());
        let re = apply(&active, &Action::Relearn, 50_000).unwrap();
        assert_eq!(re.state, State::Learning);
        assert_eq!(re.learning_until_ms, 60_000);
        assert_eq!(re.mode(), Mode::Learn);
    }
}
