//! The decision: what the mode makes of a call's observations against the
//! model. Pure: no I/O, no locks; the caller holds the model and acts on the
//! [`Decision`] (learns, emits, answers). The exec-session watcher
//! (`outside`) decides with the same function.

use nfguard_common::Mode;

use crate::event::{Kind, Verdict};
use crate::model::{self, Model, Observation};

/// What the mode makes of a call.
#[derive(Debug, PartialEq, Eq)]
pub struct Decision<'r> {
    /// The observations the model does not have: learned in learn mode, named
    /// in the event otherwise.
    pub outside: Vec<&'r Observation>,
    /// Why the call is flagged (alert and enforce modes): the event's kind,
    /// verdict, and every reason, joined.
    pub flag: Option<Flag>,
    /// Whether the call may go ahead.
    pub allow: bool,
}

/// A call outside the model, or inside it but flagged all the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    pub kind: Kind,
    pub verdict: Verdict,
    pub reason: String,
}

/// Devices every program may write without it being learned: writing them
/// changes nothing on disk and discloses nothing.
pub const ALWAYS_WRITABLE: &[&str] = &["/dev/null", "/dev/zero", "/dev/full", "/dev/tty"];

pub(crate) fn always_allowed(o: &Observation) -> bool {
    matches!(o, Observation::File(f) if f.op == "write" && ALWAYS_WRITABLE.contains(&f.path.as_str()))
}

/// Decides a call: its `observations` and, when it is to be flagged even if
/// the model has them, a `special` reason (drift, unverifiable).
///
/// - learn: always allowed; what the model lacks is to be learned, and a
///   special reason is not an event (the model is being built);
/// - alert: allowed; flagged (verdict alert) when anything is outside the
///   model or a special reason applies;
/// - enforce: the same flag with verdict deny, and not allowed;
/// - a `Forbidden` special reason refuses the call in every mode, learn
///   included, with verdict deny: it is never learned.
///
/// One event per call names every reason; its kind is the most telling one
/// (drift over outside-model over the rest).
pub fn decide<'r>(
    mode: Mode,
    model: &Model,
    observations: &'r [Observation],
    special: Option<&(Kind, String)>,
) -> Decision<'r> {
    if let Some((Kind::Forbidden, why)) = special {
        // Refused in every mode, learn included: never part of a model.
        return Decision {
            outside: Vec::new(),
            flag: Some(Flag {
                kind: Kind::Forbidden,
                verdict: Verdict::Deny,
                reason: why.clone(),
            }),
            allow: false,
        };
    }
    let outside: Vec<&Observation> = observations
        .iter()
        .filter(|o| !always_allowed(o) && !model.allows(o))
        .collect();
    if mode == Mode::Learn {
        return Decision {
            outside,
            flag: None,
            allow: true,
        };
    }
    let mut reasons: Vec<String> = outside.iter().map(|o| describe(o)).collect();
    let mut kind = (!outside.is_empty()).then_some(Kind::OutsideModel);
    if let Some((special, why)) = special {
        if *special == Kind::Drift || kind.is_none() {
            kind = Some(*special);
        }
        reasons.push(why.clone());
    }
    let verdict = if mode == Mode::Enforce {
        Verdict::Deny
    } else {
        Verdict::Alert
    };
    let flag = kind.map(|kind| Flag {
        kind,
        verdict,
        reason: reasons.join("; "),
    });
    let allow = flag.is_none() || mode != Mode::Enforce;
    Decision {
        outside,
        flag,
        allow,
    }
}

/// One sentence on why an observation is outside the model.
pub fn describe(o: &Observation) -> String {
    match o {
        Observation::Exec { parent, exe } => {
            format!("{exe} is not a program this workload runs (started by {parent})")
        }
        Observation::Socket(s) => format!(
            "{} does not open {} {} sockets (protocol {})",
            s.exe, s.family, s.kind, s.protocol
        ),
        Observation::Listen(l) => {
            format!(
                "{} does not serve {}",
                l.exe,
                model::describe_served(&l.protocol, l.port)
            )
        }
        // "does not talk PFCP (N4) to 10.0.2.7:8805" on a core interface's
        // port; "does not talk to udp 10.0.2.7:9999" elsewhere.
        Observation::Connect(c) => match nfguard_common::interfaces::lookup(&c.protocol, c.port) {
            Some(_) => format!(
                "{} does not talk {}",
                c.exe,
                model::describe_peer(&c.protocol, &c.address, c.port)
            ),
            None => format!(
                "{} does not talk to {}",
                c.exe,
                model::describe_peer(&c.protocol, &c.address, c.port)
            ),
        },
        Observation::Unix(u) => format!("{} does not {} unix socket {}", u.exe, u.op, u.path),
        Observation::File(f) => format!("{} does not {} {}", f.exe, f.op, f.path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FileEntry, ListenEntry, PeerEntry, SocketEntry, UnixEntry};

    const SH: &str = "/usr/bin/dash";

    /// One observation of each kind the supervisor makes, and its sentence.
    fn each_kind() -> Vec<(Observation, &'static str)> {
        vec![
            (
                Observation::Exec {
                    parent: SH.into(),
                    exe: "/usr/bin/ps".into(),
                },
                "/usr/bin/ps is not a program this workload runs (started by /usr/bin/dash)",
            ),
            (
                Observation::Socket(SocketEntry {
                    exe: SH.into(),
                    family: "inet".into(),
                    kind: "raw".into(),
                    protocol: 1,
                }),
                "/usr/bin/dash does not open inet raw sockets (protocol 1)",
            ),
            (
                Observation::Listen(ListenEntry {
                    exe: SH.into(),
                    protocol: "tcp".into(),
                    port: 4444,
                    address: Some("0.0.0.0".into()),
                }),
                "/usr/bin/dash does not serve tcp port 4444",
            ),
            (
                Observation::Connect(PeerEntry {
                    exe: SH.into(),
                    protocol: "tcp".into(),
                    address: "::1".into(),
                    port: 81,
                }),
                "/usr/bin/dash does not talk to tcp [::1]:81",
            ),
            (
                Observation::Connect(PeerEntry {
                    exe: SH.into(),
                    protocol: "udp".into(),
                    address: "10.0.2.7".into(),
                    port: 8805,
                }),
                "/usr/bin/dash does not talk PFCP (N4) to 10.0.2.7:8805",
            ),
            (
                Observation::Listen(ListenEntry {
                    exe: SH.into(),
                    protocol: "sctp".into(),
                    port: 38412,
                    address: None,
                }),
                "/usr/bin/dash does not serve NGAP (N2) on sctp port 38412",
            ),
            (
                Observation::Unix(UnixEntry {
                    exe: SH.into(),
                    op: "connect".into(),
                    path: "/run/docker.sock".into(),
                }),
                "/usr/bin/dash does not connect unix socket /run/docker.sock",
            ),
            (
                Observation::File(FileEntry {
                    exe: SH.into(),
                    op: "write".into(),
                    path: "/etc/passwd".into(),
                }),
                "/usr/bin/dash does not write /etc/passwd",
            ),
            (
                Observation::File(FileEntry {
                    exe: SH.into(),
                    op: "unlink".into(),
                    path: "/var/log/x".into(),
                }),
                "/usr/bin/dash does not unlink /var/log/x",
            ),
        ]
    }

    fn learned(obs: &[Observation]) -> Model {
        let mut m = Model::default();
        for o in obs {
            m.learn(o);
        }
        m
    }

    #[test]
    fn every_kind_of_observation_in_every_mode() {
        for (o, sentence) in each_kind() {
            let obs = [o.clone()];
            let empty = Model::default();
            let inside = learned(&obs);
            // Learn: allowed, and what is missing is to be learned.
            let d = decide(Mode::Learn, &empty, &obs, None);
            assert_eq!(
                (d.outside.len(), d.flag.is_none(), d.allow),
                (1, true, true)
            );
            let d = decide(Mode::Learn, &inside, &obs, None);
            assert!(d.outside.is_empty() && d.allow);
            // Alert: allowed, flagged when outside, with the sentence.
            let d = decide(Mode::Alert, &empty, &obs, None);
            assert!(d.allow);
            assert_eq!(
                d.flag,
                Some(Flag {
                    kind: Kind::OutsideModel,
                    verdict: Verdict::Alert,
                    reason: sentence.into()
                })
            );
            assert_eq!(decide(Mode::Alert, &inside, &obs, None).flag, None);
            // Enforce: refused when outside, allowed inside.
            let d = decide(Mode::Enforce, &empty, &obs, None);
            assert!(!d.allow);
            assert_eq!(d.flag.unwrap().verdict, Verdict::Deny);
            let d = decide(Mode::Enforce, &inside, &obs, None);
            assert!(d.allow && d.flag.is_none(), "{sentence}");
        }
    }

    #[test]
    fn a_special_reason_flags_a_learned_call_and_drift_names_the_kind() {
        let (exec, _) = each_kind().remove(0);
        let obs = [exec];
        let m = learned(&obs);
        let drift = (Kind::Drift, "binary not from the image".to_string());
        let unverifiable = (Kind::Unverifiable, "cannot be checked".to_string());
        for mode in [Mode::Alert, Mode::Enforce] {
            let d = decide(mode, &m, &obs, Some(&drift));
            let f = d.flag.unwrap();
            assert_eq!(
                (f.kind, f.reason.as_str()),
                (Kind::Drift, "binary not from the image")
            );
            assert_eq!(d.allow, mode == Mode::Alert);
            let d = decide(mode, &m, &obs, Some(&unverifiable));
            assert_eq!(d.flag.unwrap().kind, Kind::Unverifiable);
            assert_eq!(d.allow, mode == Mode::Alert);
        }
        // Outside the model and unverifiable: the kind is outside-model, both reasons said.
        let d = decide(Mode::Enforce, &Model::default(), &obs, Some(&unverifiable));
        let f = d.flag.unwrap();
        assert_eq!(f.kind, Kind::OutsideModel);
        assert!(f.reason.ends_with("; cannot be checked"), "{}", f.reason);
        // Outside and drift: drift is the more telling kind.
        let d = decide(Mode::Alert, &Model::default(), &obs, Some(&drift));
        assert_eq!(d.flag.unwrap().kind, Kind::Drift);
        // Learn mode never flags, whatever the reason.
        let d = decide(Mode::Learn, &m, &obs, Some(&drift));
        assert!(d.flag.is_none() && d.allow);
    }

    #[test]
    fn a_call_with_several_observations_names_each_missing_one() {
        let all: Vec<Observation> = each_kind().into_iter().map(|(o, _)| o).collect();
        let half = learned(&all[..3]);
        let d = decide(Mode::Enforce, &half, &all, None);
        assert_eq!(d.outside.len(), all.len() - 3);
        assert_eq!(d.flag.unwrap().reason.matches("; ").count(), all.len() - 4);
        assert!(!d.allow);
    }

    #[test]
    fn harmless_devices_are_always_writable_and_nothing_else_is() {
        let write = |path: &str| {
            [Observation::File(FileEntry {
                exe: SH.into(),
                op: "write".into(),
                path: path.into(),
            })]
        };
        for dev in ALWAYS_WRITABLE {
            let obs = write(dev);
            let d = decide(Mode::Enforce, &Model::default(), &obs, None);
            assert!(d.allow && d.outside.is_empty(), "{dev}");
        }
        let obs = write("/dev/sda");
        assert!(!decide(Mode::Enforce, &Model::default(), &obs, None).allow);
        // Unlinking /dev/null is no write.
        let unlink = [Observation::File(FileEntry {
            exe: SH.into(),
            op: "unlink".into(),
            path: "/dev/null".into(),
        })];
        assert!(!decide(Mode::Enforce, &Model::default(), &unlink, None).allow);
    }

    #[test]
    fn a_forbidden_call_is_refused_in_every_mode_and_never_learned() {
        let (exec, _) = each_kind().remove(0);
        let obs = [exec];
        let forbidden = (
            Kind::Forbidden,
            "mounts change what every path names".to_string(),
        );
        for mode in Mode::ALL {
            for model in [Model::default(), learned(&obs)] {
                let d = decide(mode, &model, &obs, Some(&forbidden));
                assert!(!d.allow, "{mode}");
                assert!(d.outside.is_empty(), "nothing to learn in {mode}");
                assert_eq!(
                    d.flag,
                    Some(Flag {
                        kind: Kind::Forbidden,
                        verdict: Verdict::Deny,
                        reason: "mounts change what every path names".into()
                    })
                );
            }
        }
    }

    #[test]
    fn a_call_with_nothing_to_judge_is_allowed_in_every_mode() {
        for mode in Mode::ALL {
            let d = decide(mode, &Model::default(), &[], None);
            assert!(d.allow && d.flag.is_none() && d.outside.is_empty());
        }
    }
}
