//! The console's database: every piece of its state, so that several console
//! replicas can serve one PostgreSQL, and a console restarted on its SQLite
//! file is the console it was.
//!
//! One code path for both databases, through sqlx's `Any` driver: the SQL is
//! the common subset (`$N` parameters, `ON CONFLICT`, `RETURNING`, BIGINT times
//! and flags); the two migration folders create the same tables, columns and
//! indexes, each in its dialect (a test compares them). What differs is
//! concurrency:
//! - SQLite has one writer at a time; a deferred transaction that read and
//!   then writes fails with SQLITE_BUSY rather than wait when another wrote
//!   meanwhile. So every write transaction goes through a pool of ONE
//!   connection (they queue in the pool instead of failing), and reads use
//!   their own pool (WAL lets them run beside the writer).
//! - PostgreSQL runs writers concurrently: a sync locks its model's row
//!   (`SELECT ... FOR UPDATE`), so two sidecars of one workload, on one or two
//!   consoles, apply their batches one after the other; time-driven
//!   transitions are compare-and-set updates, so two consoles promoting the
//!   same model do it once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nfguard_common::Mode;
use nfguard_sidecar::console_link::wire::{
    Item, Observed, SpooledEvent, SyncRequest, SyncResponse, WorkloadIdentity,
};
use nfguard_sidecar::model::{Model, COLLAPSE_AT};
use serde_json::{json, Value};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, Executor, Row, Transaction};

use crate::incident;
use crate::lifecycle::{self, Action, Lifecycle, State, Transition};

/// Which database is behind the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0:?} is not a database URL: expected sqlite:PATH or postgres://USER@HOST/DB")]
    Url(String),
    #[error("cannot open database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot migrate database {url}: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("database error while {what}: {source}")]
    Db {
        what: &'static str,
        source: sqlx::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Bad(String),
    #[error("{0}")]
    Conflict(String),
}

type Result<T> = std::result::Result<T, StoreError>;

fn db(what: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError {
    move |source| StoreError::Db { what, source }
}

/// What the console's operator chose, that the store applies.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Incidents group events that follow each other within this.
    pub incident_window_ms: i64,
    /// A model with no pod syncing for this long is archived.
    pub archive_after_ms: i64,
    /// Sidecars sync this often.
    pub sync_interval_ms: u64,
    /// Webhooks that get each new incident (JSON POST).
    pub incident_sinks: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            incident_window_ms: incident::DEFAULT_WINDOW_MS,
            archive_after_ms: 24 * 3600 * 1000,
            sync_interval_ms: 5000,
            incident_sinks: Vec::new(),
        }
    }
}

#[derive(Clone)]
pub struct Store {
    pub dialect: Dialect,
    read: AnyPool,
    write: AnyPool,
    pub settings: Settings,
}

/// A model's record.
#[derive(Debug, Clone)]
pub struct ModelRow {
    pub id: i64,
    pub workload_id: String,
    pub container: String,
    pub digest: String,
    pub image: String,
    pub predecessor_id: Option<i64>,
    pub prev_state: Option<String>,
    pub lc: Lifecycle,
    pub last_sync_ms: i64,
    pub version: i64,
    pub created_ms: i64,
}

const MODEL_COLS: &str = "id, workload_id, container, digest, image, predecessor_id, state, state_since_ms, prev_state, target_mode, learning_period_ms, learning_until_ms, dry_run_period_ms, quiet_period_ms, require_approval, last_new_ms, last_sync_ms, version, created_ms";

fn model_row(r: &AnyRow) -> Result<ModelRow> {
    let g = |e| StoreError::Db {
        what: "reading a model",
        source: e,
    };
    let state: String = r.try_get("state").map_err(g)?;
    let target: String = r.try_get("target_mode").map_err(g)?;
    Ok(ModelRow {
        id: r.try_get("id").map_err(g)?,
        workload_id: r.try_get("workload_id").map_err(g)?,
        container: r.try_get("container").map_err(g)?,
        digest: r.try_get("digest").map_err(g)?,
        image: r.try_get("image").map_err(g)?,
        predecessor_id: r.try_get("predecessor_id").map_err(g)?,
        prev_state: r.try_get("prev_state").map_err(g)?,
        lc: Lifecycle {
            state: state.parse().map_err(StoreError::Bad)?,
            state_since_ms: r.try_get("state_since_ms").map_err(g)?,
            learning_until_ms: r.try_get("learning_until_ms").map_err(g)?,
            learning_period_ms: r.try_get("learning_period_ms").map_err(g)?,
            dry_run_period_ms: r.try_get("dry_run_period_ms").map_err(g)?,
            quiet_period_ms: r.try_get("quiet_period_ms").map_err(g)?,
            last_new_ms: r.try_get("last_new_ms").map_err(g)?,
            require_approval: r.try_get::<i64, _>("require_approval").map_err(g)? != 0,
            target: target.parse().unwrap_or(Mode::Alert),
        },
        last_sync_ms: r.try_get("last_sync_ms").map_err(g)?,
        version: r.try_get("version").map_err(g)?,
        created_ms: r.try_get("created_ms").map_err(g)?,
    })
}

/// An item of a model, with its provenance.
#[derive(Debug, Clone)]
pub struct ItemRow {
    pub id: i64,
    pub model_id: i64,
    pub item: Item,
    pub origin: String,
    pub status: String,
    pub inherited: bool,
    pub hits: i64,
    pub first_seen_ms: Option<i64>,
    pub last_seen_ms: Option<i64>,
    pub added_ms: i64,
    pub added_by: Option<String>,
}

const ITEM_COLS: &str = "id, model_id, item_key, origin, status, inherited, hits, first_seen_ms, last_seen_ms, added_ms, added_by";

fn item_row(r: &AnyRow) -> Result<ItemRow> {
    let g = |e| StoreError::Db {
        what: "reading an item",
        source: e,
    };
    let key: String = r.try_get("item_key").map_err(g)?;
    Ok(ItemRow {
        id: r.try_get("id").map_err(g)?,
        model_id: r.try_get("model_id").map_err(g)?,
        item: serde_json::from_str(&key)
            .map_err(|e| StoreError::Bad(format!("stored item {key} is unreadable: {e}")))?,
        origin: r.try_get("origin").map_err(g)?,
        status: r.try_get("status").map_err(g)?,
        inherited: r.try_get::<i64, _>("inherited").map_err(g)? != 0,
        hits: r.try_get("hits").map_err(g)?,
        first_seen_ms: r.try_get("first_seen_ms").map_err(g)?,
        last_seen_ms: r.try_get("last_seen_ms").map_err(g)?,
        added_ms: r.try_get("added_ms").map_err(g)?,
        added_by: r.try_get("added_by").map_err(g)?,
    })
}

/// The item's key: its JSON, with the kind tag (canonical: serde writes fields in order).
pub fn item_key(item: &Item) -> String {
    serde_json::to_string(item).unwrap_or_default()
}

/// Item statuses: in the model, seen outside it in dry-run or active (a candidate), or refused by a rule.
pub const MODEL: &str = "model";
pub const CANDIDATE: &str = "candidate";
pub const DENIED: &str = "denied";

/// RFC 3339 of unix milliseconds.
pub fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

pub fn now_ms() -> i64 {
    nfguard_sidecar::console_link::ledger::now_ms()
}

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database.
    pub async fn open(url: &str, settings: Settings) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let shown = redact(url);
        let (dialect, url) = if let Some(path) = url.strip_prefix("sqlite:") {
            let path = path.trim_start_matches("//");
            if path.is_empty() {
                return Err(StoreError::Url(url.into()));
            }
            (Dialect::Sqlite, format!("sqlite://{path}?mode=rwc"))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Dialect::Postgres, url.to_string())
        } else {
            return Err(StoreError::Url(url.into()));
        };
        let open = |e| StoreError::Open {
            url: shown.clone(),
            source: e,
        };
        let (read, write) = match dialect {
            Dialect::Sqlite => {
                let opts = || {
                    AnyPoolOptions::new()
                        .acquire_timeout(Duration::from_secs(30))
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                // WAL: readers run beside the writer; NORMAL sync is
                                // durable at each checkpoint and never corrupts.
                                conn.execute("PRAGMA journal_mode = WAL").await?;
                                conn.execute("PRAGMA synchronous = NORMAL").await?;
                                conn.execute("PRAGMA busy_timeout = 10000").await?;
                                conn.execute("PRAGMA foreign_keys = ON").await?;
                                Ok(())
                            })
                        })
                };
                let write = opts()
                    .max_connections(1)
                    .connect(&url)
                    .await
                    .map_err(open)?;
                let read = opts()
                    .max_connections(8)
                    .connect(&url)
                    .await
                    .map_err(open)?;
                (read, write)
            }
            Dialect::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(30))
                    .connect(&url)
                    .await
                    .map_err(open)?;
                (pool.clone(), pool)
            }
        };
        let migrator = match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        migrator
            .run(&write)
            .await
            .map_err(|source| StoreError::Migrate {
                url: shown.clone(),
                source,
            })?;
        Ok(Store {
            dialect,
            read,
            write,
            settings,
        })
    }

    /// Is the database answering?
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map(drop)
            .map_err(db("pinging"))
    }

    fn for_update(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => " FOR UPDATE",
            Dialect::Sqlite => "",
        }
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        self.write
            .begin()
            .await
            .map_err(db("starting a transaction"))
    }

    // ---- sync: one sidecar's report and its answer ----

    pub async fn sync(&self, req: &SyncRequest, now: i64) -> Result<SyncResponse> {
        req.workload.check().map_err(StoreError::Bad)?;
        if req.container.is_empty() || req.pod.name.is_empty() || req.instance.is_empty() {
            return Err(StoreError::Bad(
                "container, pod.name and instance must not be empty".into(),
            ));
        }
        if matches!(req.want.mode, Mode::Learn) {
            return Err(StoreError::Bad(
                "want.mode is what the workload should reach once active: alert or enforce".into(),
            ));
        }
        let mut tx = self.begin().await?;
        let wid = req.workload.id();
        let mut m = self.model_for(&mut tx, req, &wid, now).await?;
        let before = (m.lc.clone(), m.version, m.prev_state.clone());
        let mut version = m.version;
        let mut last_new = m.lc.last_new_ms;

        // Settings follow the pod spec (all replicas of a workload share it).
        let target = req.want.mode;
        let dry = req
            .want
            .dry_run_period_ms
            .map(|v| v as i64)
            .unwrap_or(m.lc.dry_run_period_ms);
        if target != m.lc.target
            || dry != m.lc.dry_run_period_ms
            || req.want.require_approval != m.lc.require_approval
        {
            m.lc.target = target;
            m.lc.dry_run_period_ms = dry;
            m.lc.require_approval = req.want.require_approval;
            audit(
                &mut tx,
                now,
                &format!("pod {}", req.pod.name),
                "settings",
                Some(&wid),
                Some(m.id),
                json!({"target_mode": target, "dry_run_period_ms": dry, "require_approval": req.want.require_approval}),
            )
            .await?;
        }
        if m.lc.state == State::Archived {
            let back: State = m
                .prev_state
                .as_deref()
                .and_then(|s| s.parse().ok())
                .unwrap_or(State::DryRun);
            audit(
                &mut tx,
                now,
                "console",
                "unarchive",
                Some(&wid),
                Some(m.id),
                json!({"to": back.as_str(), "pod": req.pod.name}),
            )
            .await?;
            m.lc.state = back;
            m.lc.state_since_ms = now;
        }

        for item in &req.static_items {
            if insert_static(&mut tx, m.id, item, now).await? {
                version += 1;
            }
        }

        // Observations, once per batch.
        let (prev_instance, prev_batch): (Option<String>, i64) = match sqlx::query(
            "SELECT instance, last_batch FROM pods WHERE workload_id = $1 AND name = $2 AND container = $3",
        )
        .bind(&wid)
        .bind(&req.pod.name)
        .bind(&req.container)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("reading the pod"))?
        {
            Some(r) => (r.try_get("instance").ok(), r.try_get("last_batch").unwrap_or(0)),
            None => (None, 0),
        };
        let same_run = prev_instance.as_deref() == Some(req.instance.as_str());
        let applied_before = same_run && (req.batch as i64) <= prev_batch;
        let acked = if req.batch == 0 || applied_before {
            if same_run {
                prev_batch
            } else {
                0
            }
        } else {
            let learning = m.lc.state == State::Learning;
            // Items already in the model (the steady state): three set-based
            // statements for the whole batch; the rest one by one.
            let rest = count_known(&mut tx, m.id, &req.observations, &req.pod.name).await?;
            for o in &rest {
                match self
                    .observe(&mut tx, m.id, o, &req.pod.name, learning, now)
                    .await?
                {
                    Observed_::Known => {}
                    Observed_::NewInModel => {
                        version += 1;
                        last_new = now;
                    }
                    Observed_::NewCandidate => last_new = now,
                }
            }
            req.batch as i64
        };

        // Events, each once.
        let stored = self
            .store_events(&mut tx, &m, &req.pod.name, &req.events, now)
            .await?;

        let addresses = serde_json::to_string(&req.pod.addresses).unwrap_or_else(|_| "[]".into());
        m.lc.last_new_ms = last_new;
        // The lifecycle, now that this report is in.
        if let Some(t) = m.lc.step(now) {
            version += self.transition(&mut tx, &mut m, &t, "console", now).await?;
        }
        let mode = m.lc.mode();
        sqlx::query(
            "INSERT INTO pods (workload_id, name, container, model_id, uid, node, addresses, instance, last_batch, mode, dropped, first_seen_ms, last_seen_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12)
             ON CONFLICT (workload_id, name, container) DO UPDATE SET model_id = excluded.model_id, uid = excluded.uid, node = excluded.node,
               addresses = excluded.addresses, instance = excluded.instance, last_batch = excluded.last_batch, mode = excluded.mode,
               dropped = excluded.dropped, last_seen_ms = excluded.last_seen_ms",
        )
        .bind(&wid)
        .bind(&req.pod.name)
        .bind(&req.container)
        .bind(m.id)
        .bind(req.pod.uid.clone())
        .bind(req.pod.node.clone())
        .bind(addresses)
        .bind(&req.instance)
        .bind(acked)
        .bind(mode.as_str())
        .bind(req.dropped_events as i64)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(db("recording the pod"))?;
        m.version = version;
        // The model's row changes with its lifecycle, version and settings; the
        // time of the last sync (for archiving, a matter of hours) is refreshed
        // every 10 s at most, which saves a write on most syncs.
        if (m.lc.clone(), m.version, m.prev_state.clone()) != before
            || now - m.last_sync_ms >= 10_000
        {
            save_model(&mut tx, &m, now).await?;
        }
        let model = if mode != Mode::Learn && req.have_version != Some(version) {
            Some(render(&mut tx, m.id).await?)
        } else {
            None
        };
        tx.commit().await.map_err(db("committing a sync"))?;
        Ok(SyncResponse {
            workload_id: wid,
            model_id: m.id,
            state: m.lc.state.as_str().to_string(),
            mode,
            version,
            model,
            acked_batch: acked as u64,
            events_stored: stored,
            interval_ms: self.settings.sync_interval_ms,
            detail: m.lc.detail(now),
        })
    }

    /// The model of the sync's workload, container and digest, created (from
    /// its predecessor's for a new digest) when it is the first of its kind;
    /// locked for this transaction.
    async fn model_for(
        &self,
        tx: &mut Transaction<'static, Any>,
        req: &SyncRequest,
        wid: &str,
        now: i64,
    ) -> Result<ModelRow> {
        let select = format!(
            "SELECT {MODEL_COLS} FROM models WHERE workload_id = $1 AND container = $2 AND digest = $3{}",
            self.for_update()
        );
        let found = sqlx::query(&select)
            .bind(wid)
            .bind(&req.container)
            .bind(&req.digest)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("finding the model"))?;
        if let Some(r) = found {
            return model_row(&r);
        }
        upsert_workload(tx, &req.workload, now).await?;
        let predecessor: Option<i64> = sqlx::query(
            "SELECT id FROM models WHERE workload_id = $1 AND container = $2 AND digest <> $3 ORDER BY id DESC LIMIT 1",
        )
        .bind(wid)
        .bind(&req.container)
        .bind(&req.digest)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("finding a predecessor"))?
        .map(|r| r.try_get("id"))
        .transpose()
        .map_err(db("finding a predecessor"))?;
        let learning = req
            .want
            .learning_period_ms
            .map(|v| v as i64)
            .unwrap_or(lifecycle::DEFAULT_LEARNING_MS);
        let dry = req
            .want
            .dry_run_period_ms
            .map(|v| v as i64)
            .unwrap_or(lifecycle::DEFAULT_DRY_RUN_MS);
        let state = if predecessor.is_some() {
            State::DryRun
        } else {
            State::Learning
        };
        let inserted = sqlx::query(
            "INSERT INTO models (workload_id, container, digest, image, predecessor_id, state, state_since_ms, prev_state, target_mode,
               learning_period_ms, learning_until_ms, dry_run_period_ms, quiet_period_ms, require_approval, last_new_ms, last_sync_ms,
               version, rendered_version, rendered, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, $8, $9, $10, $11, $12, $13, $7, $7, 1, 0, NULL, $7)
             ON CONFLICT (workload_id, container, digest) DO NOTHING RETURNING id",
        )
        .bind(wid)
        .bind(&req.container)
        .bind(&req.digest)
        .bind(&req.image)
        .bind(predecessor)
        .bind(state.as_str())
        .bind(now)
        .bind(req.want.mode.as_str())
        .bind(learning)
        .bind(now + learning)
        .bind(dry)
        .bind(lifecycle::quiet_for(learning))
        .bind(req.want.require_approval as i64)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("creating the model"))?;
        if let Some(r) = inserted {
            let id: i64 = r.try_get("id").map_err(db("creating the model"))?;
            if let Some(p) = predecessor {
                copy_items(tx, p, id).await?;
            }
            audit(
                tx,
                now,
                "console",
                "create",
                Some(wid),
                Some(id),
                json!({"container": req.container, "digest": req.digest, "image": req.image, "state": state.as_str(), "predecessor": predecessor, "pod": req.pod.name}),
            )
            .await?;
        }
        let r = sqlx::query(&select)
            .bind(wid)
            .bind(&req.container)
            .bind(&req.digest)
            .fetch_one(&mut **tx)
            .await
            .map_err(db("finding the model"))?;
        model_row(&r)
    }

    /// Counts one observation towards its item, creating the item when new.
    async fn observe(
        &self,
        tx: &mut Transaction<'static, Any>,
        model_id: i64,
        o: &Observed,
        pod: &str,
        learning: bool,
        now: i64,
    ) -> Result<Observed_> {
        let key = item_key(&o.item);
        let kind = o.item.kind();
        let mut found: Option<(i64, String)> = sqlx::query(
            "SELECT id, status FROM items WHERE model_id = $1 AND kind = $2 AND item_key = $3",
        )
        .bind(model_id)
        .bind(kind)
        .bind(&key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("finding an item"))?
        .map(|r| {
            (
                r.try_get("id").unwrap_or(0),
                r.try_get("status").unwrap_or_default(),
            )
        });
        if found.is_none() && matches!(o.item, Item::File(_) | Item::Unix(_)) {
            let rows = sqlx::query(
                "SELECT id, status, item_key FROM items WHERE model_id = $1 AND kind = $2 AND exe = $3 AND pattern = 1",
            )
            .bind(model_id)
            .bind(kind)
            .bind(o.item.exe())
            .fetch_all(&mut **tx)
            .await
            .map_err(db("finding a pattern"))?;
            for r in rows {
                let k: String = r.try_get("item_key").unwrap_or_default();
                if serde_json::from_str::<Item>(&k).is_ok_and(|p| p.covers(&o.item)) {
                    found = Some((
                        r.try_get("id").unwrap_or(0),
                        r.try_get("status").unwrap_or_default(),
                    ));
                    break;
                }
            }
        }
        let (id, outcome) = match found {
            Some((id, _)) => {
                sqlx::query(
                    "UPDATE items SET hits = hits + $2,
                       first_seen_ms = CASE WHEN first_seen_ms IS NULL OR first_seen_ms > $3 THEN $3 ELSE first_seen_ms END,
                       last_seen_ms = CASE WHEN last_seen_ms IS NULL OR last_seen_ms < $4 THEN $4 ELSE last_seen_ms END
                     WHERE id = $1",
                )
                .bind(id)
                .bind(o.count as i64)
                .bind(o.first_ms)
                .bind(o.last_ms)
                .execute(&mut **tx)
                .await
                .map_err(db("counting an item"))?;
                (id, Observed_::Known)
            }
            None => {
                let status = if learning { MODEL } else { CANDIDATE };
                let id = insert_item(
                    tx,
                    model_id,
                    &o.item,
                    "learned",
                    status,
                    o.count as i64,
                    Some((o.first_ms, o.last_ms)),
                    now,
                    None,
                )
                .await?;
                (
                    id,
                    if learning {
                        Observed_::NewInModel
                    } else {
                        Observed_::NewCandidate
                    },
                )
            }
        };
        sqlx::query(
            "INSERT INTO item_pods (item_id, pod, hits, first_seen_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (item_id, pod) DO UPDATE SET hits = item_pods.hits + excluded.hits,
               first_seen_ms = CASE WHEN item_pods.first_seen_ms > excluded.first_seen_ms THEN excluded.first_seen_ms ELSE item_pods.first_seen_ms END,
               last_seen_ms = CASE WHEN item_pods.last_seen_ms < excluded.last_seen_ms THEN excluded.last_seen_ms ELSE item_pods.last_seen_ms END",
        )
        .bind(id)
        .bind(pod)
        .bind(o.count as i64)
        .bind(o.first_ms)
        .bind(o.last_ms)
        .execute(&mut **tx)
        .await
        .map_err(db("recording provenance"))?;
        if learning && outcome == Observed_::NewInModel {
            if let Item::File(f) = &o.item {
                collapse(tx, model_id, f, now).await?;
            }
        }
        Ok(outcome)
    }

    /// Stores a sync's events (each once: `(instance, id)` is unique) and files
    /// them in incidents, with set-based statements: a few per process tree
    /// and per distinct signature, not several per event.
    async fn store_events(
        &self,
        tx: &mut Transaction<'static, Any>,
        m: &ModelRow,
        pod: &str,
        events: &[SpooledEvent],
        now: i64,
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        struct Ev<'a> {
            instance: &'a str,
            seq: i64,
            at: i64,
            tree: String,
            sig: String,
            event: &'a Value,
        }
        let mut evs: Vec<Ev> = Vec::with_capacity(events.len());
        let mut seen: BTreeSet<(&str, i64)> = BTreeSet::new();
        for e in events {
            let Some(seq) = e.event["id"].as_i64() else {
                return Err(StoreError::Bad("an event has no numeric id".into()));
            };
            if !seen.insert((e.instance.as_str(), seq)) {
                continue;
            }
            evs.push(Ev {
                instance: &e.instance,
                seq,
                at: incident::time_ms(&e.event).unwrap_or(now),
                tree: incident::tree_of(&e.event),
                sig: incident::signature(&e.event),
                event: &e.event,
            });
        }
        // Resent events are known already.
        let instances: BTreeSet<&str> = evs.iter().map(|e| e.instance).collect();
        let mut known: BTreeSet<(String, i64)> = BTreeSet::new();
        for inst in instances {
            let seqs: Vec<i64> = evs
                .iter()
                .filter(|e| e.instance == inst)
                .map(|e| e.seq)
                .collect();
            for chunk in seqs.chunks(500) {
                let sql = format!(
                    "SELECT seq FROM events WHERE instance = $1 AND seq IN ({})",
                    placeholders(2, chunk.len())
                );
                let mut q = sqlx::query(&sql).bind(inst);
                for s in chunk {
                    q = q.bind(*s);
                }
                for r in q
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(db("checking events"))?
                {
                    known.insert((inst.to_string(), r.try_get("seq").unwrap_or(0)));
                }
            }
        }
        evs.retain(|e| !known.contains(&(e.instance.to_string(), e.seq)));
        evs.sort_by_key(|e| (e.at, e.seq));
        let stored = evs.len() as u64;
        // Incidents, per process tree, in time order.
        let trees: Vec<String> = {
            let mut t: Vec<String> = Vec::new();
            for e in &evs {
                if !t.contains(&e.tree) {
                    t.push(e.tree.clone());
                }
            }
            t
        };
        for tree in trees {
            let mine: Vec<&Ev> = evs.iter().filter(|e| e.tree == tree).collect();
            let open = sqlx::query(
                "SELECT id, last_ms, severity FROM incidents WHERE model_id = $1 AND pod = $2 AND tree = $3 AND state <> 'resolved' ORDER BY id DESC LIMIT 1",
            )
            .bind(m.id)
            .bind(pod)
            .bind(&tree)
            .fetch_optional(&mut **tx)
            .await
            .map_err(db("finding an incident"))?;
            // (incident id, its last time, its severity, events added)
            let mut cur: Option<(i64, i64, String, i64)> = open.map(|r| {
                (
                    r.try_get("id").unwrap_or(0),
                    r.try_get("last_ms").unwrap_or(0),
                    r.try_get("severity").unwrap_or_default(),
                    0,
                )
            });
            // Each incident this sync adds to, with the events it gets.
            type Open = (i64, i64, String, i64);
            let mut groups: Vec<(Open, Vec<&Ev>)> = Vec::new();
            for e in mine {
                let joins = cur
                    .as_ref()
                    .is_some_and(|c| incident::within(c.1, e.at, self.settings.incident_window_ms));
                if !joins {
                    if let Some(c) = cur.take() {
                        if c.3 > 0 {
                            let evs = groups.pop().map(|g| g.1).unwrap_or_default();
                            groups.push((c, evs));
                        }
                    }
                    let r = sqlx::query(
                        "INSERT INTO incidents (workload_id, model_id, container, pod, tree, state, severity, title, events, opened_ms, last_ms, state_by, state_ms)
                         VALUES ($1, $2, $3, $4, $5, 'open', $6, $7, 0, $8, $8, NULL, NULL) RETURNING id",
                    )
                    .bind(&m.workload_id)
                    .bind(m.id)
                    .bind(&m.container)
                    .bind(pod)
                    .bind(&tree)
                    .bind(incident::severity(e.event))
                    .bind(incident::title(e.event))
                    .bind(e.at)
                    .fetch_one(&mut **tx)
                    .await
                    .map_err(db("opening an incident"))?;
                    let id: i64 = r.try_get("id").map_err(db("opening an incident"))?;
                    self.notify(tx, id, m, pod, &tree, e.event, now).await?;
                    cur = Some((id, e.at, incident::severity(e.event).to_string(), 0));
                    groups.push((cur.clone().unwrap_or_default(), Vec::new()));
                } else if groups.last().map(|g| g.0 .0) != cur.as_ref().map(|c| c.0) {
                    groups.push((cur.clone().unwrap_or_default(), Vec::new()));
                }
                if let Some(c) = cur.as_mut() {
                    c.1 = c.1.max(e.at);
                    if rank(incident::severity(e.event)) > rank(&c.2) {
                        c.2 = incident::severity(e.event).to_string();
                    }
                    c.3 += 1;
                }
                if let Some(g) = groups.last_mut() {
                    g.0 = cur.clone().unwrap_or_default();
                    g.1.push(e);
                }
            }
            for ((id, last, severity, n), group) in groups {
                if group.is_empty() {
                    continue;
                }
                self.file_in_incident(
                    tx,
                    m,
                    pod,
                    id,
                    &group
                        .iter()
                        .map(|e| (e.instance, e.seq, e.at, e.sig.as_str(), e.event))
                        .collect::<Vec<_>>(),
                )
                .await?;
                sqlx::query(
                    "UPDATE incidents SET events = events + $2, severity = $3, last_ms = CASE WHEN last_ms < $4 THEN $4 ELSE last_ms END WHERE id = $1",
                )
                .bind(id)
                .bind(n)
                .bind(severity)
                .bind(last)
                .execute(&mut **tx)
                .await
                .map_err(db("updating an incident"))?;
            }
        }
        Ok(stored)
    }

    /// Queues a new incident for the sinks, in the transaction that opens it
    /// (so it is announced once, whichever console delivers it).
    #[allow(clippy::too_many_arguments)]
    async fn notify(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
        m: &ModelRow,
        pod: &str,
        tree: &str,
        first: &Value,
        now: i64,
    ) -> Result<()> {
        if self.settings.incident_sinks.is_empty() {
            return Ok(());
        }
        let body = json!({
            "kind": "nfguard.incident",
            "id": id,
            "url": format!("/api/v1/incidents/{id}"),
            "title": incident::title(first),
            "severity": incident::severity(first),
            "state": "open",
            "workload_id": m.workload_id,
            "container": m.container,
            "pod": pod,
            "tree": tree,
            "image": m.image,
            "digest": m.digest,
            "opened": first["time"],
            "first_event": first,
        })
        .to_string();
        for sink in &self.settings.incident_sinks {
            sqlx::query(
                "INSERT INTO outbox (incident_id, sink, body, attempts, next_ms, delivered_ms) VALUES ($1, $2, $3, 0, $4, NULL)",
            )
            .bind(id)
            .bind(sink)
            .bind(&body)
            .bind(now)
            .execute(&mut **tx)
            .await
            .map_err(db("queueing an incident"))?;
        }
        Ok(())
    }

    /// Claims up to `limit` due deliveries for `lease_ms` (another console
    /// skips them meanwhile): (id, sink, body, attempts).
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<(i64, String, String, i64)>> {
        let lock = match self.dialect {
            Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
            Dialect::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET next_ms = $1 + $2 WHERE id IN (SELECT id FROM outbox WHERE delivered_ms IS NULL AND next_ms <= $1 ORDER BY id LIMIT $3{lock}) RETURNING id, sink, body, attempts"
        );
        let mut tx = self.begin().await?;
        let rows = sqlx::query(&sql)
            .bind(now)
            .bind(lease_ms)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await
            .map_err(db("claiming deliveries"))?;
        tx.commit().await.map_err(db("claiming deliveries"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.try_get("id").unwrap_or(0),
                    r.try_get("sink").unwrap_or_default(),
                    r.try_get("body").unwrap_or_default(),
                    r.try_get("attempts").unwrap_or(0),
                )
            })
            .collect())
    }

    /// A delivery's outcome: delivered, or tried again at `retry_at`.
    pub async fn delivered(&self, id: i64, ok: bool, retry_at: i64, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let q = if ok {
            sqlx::query(
                "UPDATE outbox SET delivered_ms = $2, attempts = attempts + 1 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
        } else {
            sqlx::query("UPDATE outbox SET next_ms = $2, attempts = attempts + 1 WHERE id = $1")
                .bind(id)
                .bind(retry_at)
        };
        q.execute(&mut *tx)
            .await
            .map_err(db("recording a delivery"))?;
        tx.commit().await.map_err(db("recording a delivery"))?;
        Ok(())
    }

    /// Inserts one incident's new events: the first of each signature with its
    /// body, the repeats folded into it (counted, body left out).
    async fn file_in_incident(
        &self,
        tx: &mut Transaction<'static, Any>,
        m: &ModelRow,
        pod: &str,
        incident_id: i64,
        group: &[(&str, i64, i64, &str, &Value)],
    ) -> Result<()> {
        let sigs: BTreeSet<&str> = group.iter().map(|g| g.3).collect();
        let mut first: BTreeMap<String, i64> = BTreeMap::new();
        let sigs: Vec<&str> = sigs.into_iter().collect();
        for chunk in sigs.chunks(200) {
            let sql = format!(
                "SELECT signature, id FROM events WHERE incident_id = $1 AND folded = 0 AND signature IN ({})",
                placeholders(2, chunk.len())
            );
            let mut q = sqlx::query(&sql).bind(incident_id);
            for s in chunk {
                q = q.bind(*s);
            }
            for r in q
                .fetch_all(&mut **tx)
                .await
                .map_err(db("throttling events"))?
            {
                first.insert(
                    r.try_get("signature").unwrap_or_default(),
                    r.try_get("id").unwrap_or(0),
                );
            }
        }
        // Repeats per first event: (count, last time).
        let mut repeats: BTreeMap<i64, (i64, i64)> = BTreeMap::new();
        let mut folded: Vec<&(&str, i64, i64, &str, &Value)> = Vec::new();
        for g in group {
            match first.get(g.3) {
                Some(id) => {
                    let r = repeats.entry(*id).or_insert((0, 0));
                    r.0 += 1;
                    r.1 = r.1.max(g.2);
                    folded.push(g);
                }
                None => {
                    let r = sqlx::query(
                        "INSERT INTO events (instance, seq, incident_id, model_id, pod, time_ms, signature, folded, repeats, last_ms, body)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, 1, $6, $8) ON CONFLICT (instance, seq) DO NOTHING RETURNING id",
                    )
                    .bind(g.0)
                    .bind(g.1)
                    .bind(incident_id)
                    .bind(m.id)
                    .bind(pod)
                    .bind(g.2)
                    .bind(g.3)
                    .bind(serde_json::to_string(g.4).unwrap_or_default())
                    .fetch_optional(&mut **tx)
                    .await
                    .map_err(db("storing an event"))?;
                    if let Some(r) = r {
                        first.insert(g.3.to_string(), r.try_get("id").unwrap_or(0));
                    }
                }
            }
        }
        for chunk in folded.chunks(200) {
            let instances: BTreeSet<&str> = chunk.iter().map(|g| g.0).collect();
            for inst in instances {
                let of: Vec<_> = chunk.iter().filter(|g| g.0 == inst).collect();
                let rows: Vec<String> = (0..of.len())
                    .map(|i| {
                        let b = 5 + i * 3;
                        format!(
                            "($1, ${b}, $2, $3, $4, ${}, ${}, 1, 1, ${}, NULL)",
                            b + 1,
                            b + 2,
                            b + 1
                        )
                    })
                    .collect();
                let sql = format!(
                    "INSERT INTO events (instance, seq, incident_id, model_id, pod, time_ms, signature, folded, repeats, last_ms, body) VALUES {} ON CONFLICT (instance, seq) DO NOTHING",
                    rows.join(", ")
                );
                let mut q = sqlx::query(&sql)
                    .bind(inst)
                    .bind(incident_id)
                    .bind(m.id)
                    .bind(pod);
                for g in of {
                    q = q.bind(g.1).bind(g.2).bind(g.3);
                }
                q.execute(&mut **tx).await.map_err(db("storing events"))?;
            }
        }
        for (id, (n, last)) in repeats {
            sqlx::query(
                "UPDATE events SET repeats = repeats + $2, last_ms = CASE WHEN last_ms < $3 THEN $3 ELSE last_ms END WHERE id = $1",
            )
            .bind(id)
            .bind(n)
            .bind(last)
            .execute(&mut **tx)
            .await
            .map_err(db("throttling events"))?;
        }
        Ok(())
    }

    /// Applies a transition; returns by how much the version moved.
    async fn transition(
        &self,
        tx: &mut Transaction<'static, Any>,
        m: &mut ModelRow,
        t: &Transition,
        actor: &str,
        now: i64,
    ) -> Result<i64> {
        let from = m.lc.state;
        m.lc.state = t.to;
        m.lc.state_since_ms = now;
        let mut moved = 0;
        // A new image's dry-run learns only the difference: its candidates
        // join the model when it is promoted.
        if from == State::DryRun && t.to == State::Active && m.predecessor_id.is_some() {
            moved = accept_candidates(tx, m.id).await?;
        }
        audit(
            tx,
            now,
            actor,
            "promote",
            Some(&m.workload_id),
            Some(m.id),
            json!({"from": from.as_str(), "to": t.to.as_str(), "reason": t.reason, "accepted_candidates": moved}),
        )
        .await?;
        Ok(moved)
    }

    /// Time-driven work for models no sidecar syncs: promotions and archiving.
    pub async fn tick(&self, now: i64) -> Result<usize> {
        let rows = sqlx::query(&format!(
            "SELECT {MODEL_COLS} FROM models WHERE state <> 'archived'"
        ))
        .fetch_all(&self.read)
        .await
        .map_err(db("listing models"))?;
        let mut changed = 0;
        for r in rows {
            let m = model_row(&r)?;
            let archive = now - m.last_sync_ms >= self.settings.archive_after_ms;
            let step = m.lc.step(now);
            if !archive && step.is_none() {
                continue;
            }
            let mut tx = self.begin().await?;
            let Some(r) = sqlx::query(&format!(
                "SELECT {MODEL_COLS} FROM models WHERE id = $1{}",
                self.for_update()
            ))
            .bind(m.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("locking a model"))?
            else {
                continue;
            };
            let mut cur = model_row(&r)?;
            // Another console may have acted meanwhile: decide again on what is stored.
            if cur.lc.state == State::Archived {
                continue;
            }
            if now - cur.last_sync_ms >= self.settings.archive_after_ms {
                cur.prev_state = Some(cur.lc.state.as_str().to_string());
                audit(
                    &mut tx,
                    now,
                    "console",
                    "archive",
                    Some(&cur.workload_id),
                    Some(cur.id),
                    json!({"from": cur.lc.state.as_str(), "reason": format!("no pod reported for {} s", (now - cur.last_sync_ms) / 1000)}),
                )
                .await?;
                cur.lc.state = State::Archived;
                cur.lc.state_since_ms = now;
            } else if let Some(t) = cur.lc.step(now) {
                let moved = self
                    .transition(&mut tx, &mut cur, &t, "console", now)
                    .await?;
                cur.version += moved;
            } else {
                continue;
            }
            save_model(&mut tx, &cur, cur.last_sync_ms).await?;
            tx.commit().await.map_err(db("committing a transition"))?;
            changed += 1;
        }
        Ok(changed)
    }

    // ---- reads ----

    pub async fn model_by_id(&self, id: i64) -> Result<ModelRow> {
        let r = sqlx::query(&format!("SELECT {MODEL_COLS} FROM models WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db("reading a model"))?
            .ok_or_else(|| StoreError::NotFound(format!("no model {id}")))?;
        model_row(&r)
    }

    pub async fn models_of(&self, workload_id: &str) -> Result<Vec<ModelRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {MODEL_COLS} FROM models WHERE workload_id = $1 ORDER BY container, id"
        ))
        .bind(workload_id)
        .fetch_all(&self.read)
        .await
        .map_err(db("listing models"))?;
        rows.iter().map(model_row).collect()
    }

    /// The model an operator means: of `container` (or the workload's only
    /// one), of `digest` (or the newest one not archived, else the newest).
    pub async fn pick_model(
        &self,
        workload_id: &str,
        container: Option<&str>,
        digest: Option<&str>,
    ) -> Result<ModelRow> {
        let models = self.models_of(workload_id).await?;
        if models.is_empty() {
            return Err(StoreError::NotFound(format!(
                "no workload {workload_id:?} (ids are CLUSTER:NAMESPACE:KIND:NAME, see GET /api/v1/workloads)"
            )));
        }
        let containers: BTreeSet<&str> = models.iter().map(|m| m.container.as_str()).collect();
        let container = match container {
            Some(c) if containers.contains(c) => c.to_string(),
            Some(c) => {
                return Err(StoreError::NotFound(format!(
                    "workload {workload_id} has no container {c:?} (it has {})",
                    containers.into_iter().collect::<Vec<_>>().join(", ")
                )))
            }
            None if containers.len() == 1 => containers
                .iter()
                .next()
                .map(|s| s.to_string())
                .unwrap_or_default(),
            None => {
                return Err(StoreError::Bad(format!(
                    "workload {workload_id} has several containers ({}): say which with container=",
                    containers.into_iter().collect::<Vec<_>>().join(", ")
                )))
            }
        };
        let of: Vec<&ModelRow> = models.iter().filter(|m| m.container == container).collect();
        if let Some(d) = digest {
            return of
                .iter()
                .find(|m| m.digest == d)
                .map(|m| (*m).clone())
                .ok_or_else(|| {
                    StoreError::NotFound(format!(
                        "workload {workload_id} container {container} has no model for digest {d:?}"
                    ))
                });
        }
        of.iter()
            .rev()
            .find(|m| m.lc.state != State::Archived)
            .or(of.last())
            .map(|m| (*m).clone())
            .ok_or_else(|| StoreError::NotFound("no model".into()))
    }

    pub async fn items(&self, model_id: i64) -> Result<Vec<ItemRow>> {
        let rows = sqlx::query(&format!(
            "SELECT {ITEM_COLS} FROM items WHERE model_id = $1 ORDER BY kind, item_key"
        ))
        .bind(model_id)
        .fetch_all(&self.read)
        .await
        .map_err(db("listing items"))?;
        rows.iter().map(item_row).collect()
    }

    /// Per item, the pods that saw it: item id -> (pod, hits, first, last).
    pub async fn provenance(&self, model_id: i64) -> Result<BTreeMap<i64, Vec<Value>>> {
        let rows = sqlx::query(
            "SELECT p.item_id, p.pod, p.hits, p.first_seen_ms, p.last_seen_ms FROM item_pods p JOIN items i ON i.id = p.item_id WHERE i.model_id = $1 ORDER BY p.item_id, p.pod",
        )
        .bind(model_id)
        .fetch_all(&self.read)
        .await
        .map_err(db("reading provenance"))?;
        let mut out: BTreeMap<i64, Vec<Value>> = BTreeMap::new();
        for r in rows {
            let id: i64 = r.try_get("item_id").map_err(db("reading provenance"))?;
            out.entry(id).or_default().push(json!({
                "pod": r.try_get::<String, _>("pod").unwrap_or_default(),
                "hits": r.try_get::<i64, _>("hits").unwrap_or(0),
                "first_seen": rfc3339(r.try_get("first_seen_ms").unwrap_or(0)),
                "last_seen": rfc3339(r.try_get("last_seen_ms").unwrap_or(0)),
            }));
        }
        Ok(out)
    }

    /// The sidecar model of a model id (its items in status `model`).
    pub async fn rendered(&self, model_id: i64) -> Result<Model> {
        let mut tx = self.begin().await?;
        let m = render(&mut tx, model_id).await?;
        tx.commit().await.map_err(db("rendering"))?;
        Ok(m)
    }

    pub async fn workload_rows(&self) -> Result<Vec<(WorkloadIdentity, i64)>> {
        let rows = sqlx::query(
            "SELECT cluster, namespace, kind, name, last_seen_ms FROM workloads ORDER BY namespace, name, kind",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db("listing workloads"))?;
        rows.iter()
            .map(|r| {
                Ok((
                    WorkloadIdentity {
                        cluster: r.try_get("cluster").map_err(db("listing workloads"))?,
                        namespace: r.try_get("namespace").map_err(db("listing workloads"))?,
                        kind: r.try_get("kind").map_err(db("listing workloads"))?,
                        name: r.try_get("name").map_err(db("listing workloads"))?,
                    },
                    r.try_get("last_seen_ms").map_err(db("listing workloads"))?,
                ))
            })
            .collect()
    }

    /// Pods, for every workload or one: (workload id, json).
    pub async fn pods(&self, workload_id: Option<&str>) -> Result<Vec<(String, Value)>> {
        let rows = sqlx::query(
            "SELECT workload_id, name, container, model_id, uid, node, addresses, mode, dropped, first_seen_ms, last_seen_ms FROM pods WHERE ($1 = '' OR workload_id = $1) ORDER BY workload_id, name, container",
        )
        .bind(workload_id.unwrap_or(""))
        .fetch_all(&self.read)
        .await
        .map_err(db("listing pods"))?;
        rows.iter()
            .map(|r| {
                let addrs: String = r.try_get("addresses").unwrap_or_default();
                Ok((
                    r.try_get("workload_id").map_err(db("listing pods"))?,
                    json!({
                        "name": r.try_get::<String, _>("name").unwrap_or_default(),
                        "container": r.try_get::<String, _>("container").unwrap_or_default(),
                        "model_id": r.try_get::<i64, _>("model_id").unwrap_or(0),
                        "uid": r.try_get::<Option<String>, _>("uid").unwrap_or(None),
                        "node": r.try_get::<Option<String>, _>("node").unwrap_or(None),
                        "addresses": serde_json::from_str::<Value>(&addrs).unwrap_or(json!([])),
                        "mode": r.try_get::<String, _>("mode").unwrap_or_default(),
                        "dropped_events": r.try_get::<i64, _>("dropped").unwrap_or(0),
                        "first_seen": rfc3339(r.try_get("first_seen_ms").unwrap_or(0)),
                        "last_seen": rfc3339(r.try_get("last_seen_ms").unwrap_or(0)),
                        "last_seen_ms": r.try_get::<i64, _>("last_seen_ms").unwrap_or(0),
                    }),
                ))
            })
            .collect()
    }

    /// Counts of items by model and status: model id -> status -> n.
    pub async fn item_counts(&self) -> Result<BTreeMap<i64, BTreeMap<String, i64>>> {
        let rows = sqlx::query(
            "SELECT model_id, status, COUNT(*) AS n FROM items GROUP BY model_id, status",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db("counting items"))?;
        let mut out: BTreeMap<i64, BTreeMap<String, i64>> = BTreeMap::new();
        for r in rows {
            out.entry(r.try_get("model_id").unwrap_or(0))
                .or_default()
                .insert(
                    r.try_get("status").unwrap_or_default(),
                    r.try_get("n").unwrap_or(0),
                );
        }
        Ok(out)
    }

    /// Open (not resolved) incidents by workload.
    pub async fn open_incidents(&self) -> Result<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT workload_id, COUNT(*) AS n FROM incidents WHERE state <> 'resolved' GROUP BY workload_id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db("counting incidents"))?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.try_get("workload_id").unwrap_or_default(),
                    r.try_get("n").unwrap_or(0),
                )
            })
            .collect())
    }

    /// Learned connect and listen items of every model not archived:
    /// (workload id, item). The radar draws edges from the connects and tells
    /// apart, by the ports they serve, workloads that share an address (the
    /// pods of `nfguard run` on one host all report the host's).
    pub async fn connects(&self) -> Result<Vec<(String, Item)>> {
        let rows = sqlx::query(
            "SELECT m.workload_id, i.item_key FROM items i JOIN models m ON m.id = i.model_id WHERE i.kind IN ('connect', 'listen') AND i.status = 'model' AND m.state <> 'archived' ORDER BY m.workload_id, i.id",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db("listing connects"))?;
        Ok(rows
            .iter()
            .filter_map(|r| {
                let k: String = r.try_get("item_key").ok()?;
                Some((
                    r.try_get("workload_id").ok()?,
                    serde_json::from_str(&k).ok()?,
                ))
            })
            .collect())
    }

    // ---- operators' actions ----

    /// Approve, relearn or extend, checked against the state, with its audit entry.
    pub async fn act(
        &self,
        model_id: i64,
        action: &Action,
        include_candidates: Option<bool>,
        actor: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<ModelRow> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(&format!(
            "SELECT {MODEL_COLS} FROM models WHERE id = $1{}",
            self.for_update()
        ))
        .bind(model_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("locking a model"))?
        .ok_or_else(|| StoreError::NotFound(format!("no model {model_id}")))?;
        let mut m = model_row(&r)?;
        let next = lifecycle::apply(&m.lc, action, now)
            .map_err(|e| StoreError::Conflict(e.to_string()))?;
        let mut detail =
            json!({"from": m.lc.state.as_str(), "to": next.state.as_str(), "reason": reason});
        match action {
            Action::Approve => {
                // An upgrade's candidates are its difference: taken unless told otherwise.
                if include_candidates.unwrap_or(m.predecessor_id.is_some()) {
                    let n = accept_candidates(&mut tx, m.id).await?;
                    m.version += n;
                    detail["accepted_candidates"] = json!(n);
                }
            }
            Action::Relearn => {
                let n = sqlx::query(
                    "DELETE FROM item_pods WHERE item_id IN (SELECT id FROM items WHERE model_id = $1 AND origin = 'learned')",
                )
                .bind(m.id)
                .execute(&mut *tx)
                .await
                .map_err(db("relearning"))?;
                let _ = n;
                let n = sqlx::query("DELETE FROM items WHERE model_id = $1 AND origin = 'learned'")
                    .bind(m.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("relearning"))?
                    .rows_affected();
                detail["forgotten_items"] = json!(n);
                m.version += 1;
            }
            Action::Extend { by_ms } => {
                detail["by_ms"] = json!(by_ms);
            }
        }
        m.lc = next;
        let name = match action {
            Action::Approve => "approve",
            Action::Relearn => "relearn",
            Action::Extend { .. } => "extend",
        };
        audit(
            &mut tx,
            now,
            actor,
            name,
            Some(&m.workload_id),
            Some(m.id),
            detail,
        )
        .await?;
        save_model(&mut tx, &m, m.last_sync_ms).await?;
        tx.commit().await.map_err(db("committing an action"))?;
        Ok(m)
    }

    /// A manual rule: allow (the item joins the model) or deny (it never does).
    pub async fn rule(
        &self,
        model_id: i64,
        item: &Item,
        allow: bool,
        actor: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let m = self.model_by_id_tx(&mut tx, model_id).await?;
        let status = if allow { MODEL } else { DENIED };
        let key = item_key(item);
        let existing =
            sqlx::query("SELECT id FROM items WHERE model_id = $1 AND kind = $2 AND item_key = $3")
                .bind(model_id)
                .bind(item.kind())
                .bind(&key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db("finding an item"))?
                .and_then(|r| r.try_get::<i64, _>("id").ok());
        let id = match existing {
            Some(id) => {
                sqlx::query("UPDATE items SET status = $2, origin = CASE WHEN origin = 'learned' AND $2 = 'denied' THEN origin ELSE 'manual' END, added_by = $3, added_ms = $4 WHERE id = $1")
                    .bind(id)
                    .bind(status)
                    .bind(actor)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(db("updating a rule"))?;
                id
            }
            None => {
                insert_item(
                    &mut tx,
                    model_id,
                    item,
                    "manual",
                    status,
                    0,
                    None,
                    now,
                    Some(actor),
                )
                .await?
            }
        };
        sqlx::query("UPDATE models SET version = version + 1 WHERE id = $1")
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db("versioning"))?;
        audit(
            &mut tx,
            now,
            actor,
            if allow { "rule-allow" } else { "rule-deny" },
            Some(&m.workload_id),
            Some(model_id),
            json!({"item": item, "item_id": id, "reason": reason}),
        )
        .await?;
        tx.commit().await.map_err(db("committing a rule"))?;
        Ok(id)
    }

    /// Removes a manual rule (or any item: it is learned again if seen while learning).
    pub async fn delete_item(
        &self,
        model_id: i64,
        item_id: i64,
        actor: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let m = self.model_by_id_tx(&mut tx, model_id).await?;
        let r = sqlx::query(&format!(
            "SELECT {ITEM_COLS} FROM items WHERE id = $1 AND model_id = $2"
        ))
        .bind(item_id)
        .bind(model_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("finding an item"))?
        .ok_or_else(|| StoreError::NotFound(format!("model {model_id} has no item {item_id}")))?;
        let it = item_row(&r)?;
        sqlx::query("DELETE FROM item_pods WHERE item_id = $1")
            .bind(item_id)
            .execute(&mut *tx)
            .await
            .map_err(db("removing an item"))?;
        sqlx::query("DELETE FROM items WHERE id = $1")
            .bind(item_id)
            .execute(&mut *tx)
            .await
            .map_err(db("removing an item"))?;
        sqlx::query("UPDATE models SET version = version + 1 WHERE id = $1")
            .bind(model_id)
            .execute(&mut *tx)
            .await
            .map_err(db("versioning"))?;
        audit(
            &mut tx,
            now,
            actor,
            "remove-item",
            Some(&m.workload_id),
            Some(model_id),
            json!({"item": it.item, "origin": it.origin, "status": it.status}),
        )
        .await?;
        tx.commit().await.map_err(db("committing"))?;
        Ok(())
    }

    async fn model_by_id_tx(
        &self,
        tx: &mut Transaction<'static, Any>,
        id: i64,
    ) -> Result<ModelRow> {
        let r = sqlx::query(&format!(
            "SELECT {MODEL_COLS} FROM models WHERE id = $1{}",
            self.for_update()
        ))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(db("reading a model"))?
        .ok_or_else(|| StoreError::NotFound(format!("no model {id}")))?;
        model_row(&r)
    }

    pub async fn audit_log(&self, workload_id: Option<&str>, limit: i64) -> Result<Vec<Value>> {
        let rows = sqlx::query(
            "SELECT id, time_ms, actor, action, workload_id, model_id, detail FROM audit WHERE ($1 = '' OR workload_id = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(workload_id.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(db("reading the audit log"))?;
        Ok(rows
            .iter()
            .map(|r| {
                let d: String = r.try_get("detail").unwrap_or_default();
                json!({
                    "id": r.try_get::<i64, _>("id").unwrap_or(0),
                    "time": rfc3339(r.try_get("time_ms").unwrap_or(0)),
                    "actor": r.try_get::<String, _>("actor").unwrap_or_default(),
                    "action": r.try_get::<String, _>("action").unwrap_or_default(),
                    "workload_id": r.try_get::<Option<String>, _>("workload_id").unwrap_or(None),
                    "model_id": r.try_get::<Option<i64>, _>("model_id").unwrap_or(None),
                    "detail": serde_json::from_str::<Value>(&d).unwrap_or(Value::Null),
                })
            })
            .collect())
    }

    // ---- incidents ----

    pub async fn incidents(
        &self,
        state: Option<&str>,
        workload: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Value>> {
        let rows = sqlx::query(
            "SELECT i.id, i.workload_id, i.model_id, i.container, i.pod, i.tree, i.state, i.severity, i.title, i.events, i.opened_ms, i.last_ms, i.state_by, i.state_ms, m.digest, m.image
             FROM incidents i JOIN models m ON m.id = i.model_id
             WHERE ($1 = '' OR i.state = $1) AND ($2 = '' OR i.workload_id = $2) ORDER BY i.last_ms DESC, i.id DESC LIMIT $3",
        )
        .bind(state.unwrap_or(""))
        .bind(workload.unwrap_or(""))
        .bind(limit)
        .fetch_all(&self.read)
        .await
        .map_err(db("listing incidents"))?;
        Ok(rows.iter().map(incident_json).collect())
    }

    pub async fn incident(&self, id: i64) -> Result<Value> {
        let r = sqlx::query(
            "SELECT i.id, i.workload_id, i.model_id, i.container, i.pod, i.tree, i.state, i.severity, i.title, i.events, i.opened_ms, i.last_ms, i.state_by, i.state_ms, m.digest, m.image
             FROM incidents i JOIN models m ON m.id = i.model_id WHERE i.id = $1",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(db("reading an incident"))?
        .ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
        let mut out = incident_json(&r);
        let rows = sqlx::query(
            "SELECT id, time_ms, repeats, last_ms, body FROM events WHERE incident_id = $1 AND folded = 0 ORDER BY time_ms, id",
        )
        .bind(id)
        .fetch_all(&self.read)
        .await
        .map_err(db("reading a timeline"))?;
        let mut timeline = Vec::new();
        let mut processes: BTreeMap<i64, Value> = BTreeMap::new();
        let mut first: Option<Value> = None;
        for r in rows {
            let body: Option<String> = r.try_get("body").unwrap_or(None);
            let ev: Value = body
                .and_then(|b| serde_json::from_str(&b).ok())
                .unwrap_or(Value::Null);
            if first.is_none() {
                first = Some(ev.clone());
            }
            if let Some(pid) = ev["pid"].as_i64() {
                processes.entry(pid).or_insert_with(|| json!({
                    "pid": pid, "ppid": ev["ppid"], "exe": ev["exe"], "argv": ev["argv"], "uid": ev["uid"],
                    "first_seen": ev["time"],
                }));
            }
            timeline.push(json!({
                "event_id": r.try_get::<i64, _>("id").unwrap_or(0),
                "time": rfc3339(r.try_get("time_ms").unwrap_or(0)),
                "repeats": r.try_get::<i64, _>("repeats").unwrap_or(1),
                "last": rfc3339(r.try_get("last_ms").unwrap_or(0)),
                "event": ev,
            }));
        }
        if let Some(f) = first {
            for k in ["namespace", "node", "user", "session", "image"] {
                if !f[k].is_null() {
                    out[k] = f[k].clone();
                }
            }
        }
        out["processes"] = Value::Array(processes.into_values().collect());
        out["timeline"] = Value::Array(timeline);
        Ok(out)
    }

    pub async fn set_incident_state(
        &self,
        id: i64,
        state: &str,
        actor: &str,
        reason: Option<&str>,
        now: i64,
    ) -> Result<()> {
        if !incident::STATES.contains(&state) {
            return Err(StoreError::Bad(format!(
                "unknown incident state {state:?}: expected open, acknowledged or resolved"
            )));
        }
        let mut tx = self.begin().await?;
        let r = sqlx::query("SELECT workload_id, model_id, state FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(db("reading an incident"))?
            .ok_or_else(|| StoreError::NotFound(format!("no incident {id}")))?;
        let wid: String = r.try_get("workload_id").unwrap_or_default();
        let mid: i64 = r.try_get("model_id").unwrap_or(0);
        let from: String = r.try_get("state").unwrap_or_default();
        sqlx::query("UPDATE incidents SET state = $2, state_by = $3, state_ms = $4 WHERE id = $1")
            .bind(id)
            .bind(state)
            .bind(actor)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(db("updating an incident"))?;
        audit(
            &mut tx,
            now,
            actor,
            "incident-state",
            Some(&wid),
            Some(mid),
            json!({"incident": id, "from": from, "to": state, "reason": reason}),
        )
        .await?;
        tx.commit().await.map_err(db("committing"))?;
        Ok(())
    }

    /// An event's body and model, for "add to model".
    pub async fn event(&self, id: i64) -> Result<(i64, Value)> {
        let r = sqlx::query("SELECT model_id, body FROM events WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(db("reading an event"))?
            .ok_or_else(|| StoreError::NotFound(format!("no event {id}")))?;
        let body: Option<String> = r.try_get("body").unwrap_or(None);
        let body = body
            .and_then(|b| serde_json::from_str(&b).ok())
            .ok_or_else(|| {
                StoreError::NotFound(format!("event {id} is a repeat: add its first occurrence"))
            })?;
        Ok((r.try_get("model_id").unwrap_or(0), body))
    }

    // ---- tokens ----

    pub async fn token_by_hash(
        &self,
        hash: &str,
    ) -> Result<Option<(String, String, Option<String>)>> {
        let r = sqlx::query("SELECT name, role, scope FROM tokens WHERE hash = $1")
            .bind(hash)
            .fetch_optional(&self.read)
            .await
            .map_err(db("checking a token"))?;
        Ok(r.map(|r| {
            (
                r.try_get("name").unwrap_or_default(),
                r.try_get("role").unwrap_or_default(),
                r.try_get("scope").unwrap_or(None),
            )
        }))
    }

    pub async fn create_token(
        &self,
        name: &str,
        hash: &str,
        role: &str,
        scope: Option<&str>,
        actor: &str,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let r = sqlx::query(
            "INSERT INTO tokens (name, hash, role, scope, created_ms, created_by) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING name",
        )
        .bind(name)
        .bind(hash)
        .bind(role)
        .bind(scope)
        .bind(now)
        .bind(actor)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("creating a token"))?;
        if r.is_none() {
            return Err(StoreError::Conflict(format!(
                "a token named {name:?} exists: delete it first"
            )));
        }
        audit(
            &mut tx,
            now,
            actor,
            "token-create",
            None,
            None,
            json!({"name": name, "role": role, "scope": scope}),
        )
        .await?;
        tx.commit().await.map_err(db("committing"))?;
        Ok(())
    }

    pub async fn tokens(&self) -> Result<Vec<Value>> {
        let rows = sqlx::query(
            "SELECT name, role, scope, created_ms, created_by FROM tokens ORDER BY name",
        )
        .fetch_all(&self.read)
        .await
        .map_err(db("listing tokens"))?;
        Ok(rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.try_get::<String, _>("name").unwrap_or_default(),
                    "role": r.try_get::<String, _>("role").unwrap_or_default(),
                    "scope": r.try_get::<Option<String>, _>("scope").unwrap_or(None),
                    "created": rfc3339(r.try_get("created_ms").unwrap_or(0)),
                    "created_by": r.try_get::<String, _>("created_by").unwrap_or_default(),
                })
            })
            .collect())
    }

    pub async fn delete_token(&self, name: &str, actor: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = sqlx::query("DELETE FROM tokens WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await
            .map_err(db("deleting a token"))?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound(format!("no token named {name:?}")));
        }
        audit(
            &mut tx,
            now,
            actor,
            "token-delete",
            None,
            None,
            json!({"name": name}),
        )
        .await?;
        tx.commit().await.map_err(db("committing"))?;
        Ok(())
    }

    /// Tables and their columns, for the schema comparison test.
    pub async fn schema(&self) -> Result<BTreeMap<String, BTreeSet<String>>> {
        let q = match self.dialect {
            Dialect::Sqlite => "SELECT m.name AS t, p.name AS c FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '_sqlx%'",
            Dialect::Postgres => "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name NOT LIKE '_sqlx%'",
        };
        let rows = sqlx::query(q)
            .fetch_all(&self.read)
            .await
            .map_err(db("reading the schema"))?;
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in rows {
            out.entry(r.try_get("t").unwrap_or_default())
                .or_default()
                .insert(r.try_get("c").unwrap_or_default());
        }
        Ok(out)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Observed_ {
    Known,
    NewInModel,
    NewCandidate,
}

fn rank(sev: &str) -> u8 {
    match sev {
        "high" => 3,
        "medium" => 2,
        _ => 1,
    }
}

fn incident_json(r: &AnyRow) -> Value {
    let wid: String = r.try_get("workload_id").unwrap_or_default();
    let parts: Vec<&str> = wid.splitn(4, ':').collect();
    json!({
        "id": r.try_get::<i64, _>("id").unwrap_or(0),
        "workload_id": wid,
        "cluster": parts.first(),
        "namespace": parts.get(1),
        "workload": {"kind": parts.get(2), "name": parts.get(3)},
        "model_id": r.try_get::<i64, _>("model_id").unwrap_or(0),
        "container": r.try_get::<String, _>("container").unwrap_or_default(),
        "pod": r.try_get::<String, _>("pod").unwrap_or_default(),
        "tree": r.try_get::<String, _>("tree").unwrap_or_default(),
        "state": r.try_get::<String, _>("state").unwrap_or_default(),
        "severity": r.try_get::<String, _>("severity").unwrap_or_default(),
        "title": r.try_get::<String, _>("title").unwrap_or_default(),
        "events": r.try_get::<i64, _>("events").unwrap_or(0),
        "opened": rfc3339(r.try_get("opened_ms").unwrap_or(0)),
        "last": rfc3339(r.try_get("last_ms").unwrap_or(0)),
        "state_by": r.try_get::<Option<String>, _>("state_by").unwrap_or(None),
        "digest": r.try_get::<String, _>("digest").unwrap_or_default(),
        "image": r.try_get::<String, _>("image").unwrap_or_default(),
    })
}

fn redact(url: &str) -> String {
    // postgres://user:secret@host/db -> postgres://user:***@host/db
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((cred, host)) = rest.split_once('@') {
            if let Some((user, _)) = cred.split_once(':') {
                return format!("{scheme}://{user}:***@{host}");
            }
        }
    }
    url.to_string()
}

async fn upsert_workload(
    tx: &mut Transaction<'static, Any>,
    w: &WorkloadIdentity,
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO workloads (id, cluster, namespace, kind, name, created_ms, last_seen_ms) VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms",
    )
    .bind(w.id())
    .bind(&w.cluster)
    .bind(&w.namespace)
    .bind(&w.kind)
    .bind(&w.name)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map(drop)
    .map_err(db("recording the workload"))
}

async fn save_model(
    tx: &mut Transaction<'static, Any>,
    m: &ModelRow,
    last_sync: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE models SET state = $2, state_since_ms = $3, prev_state = $4, target_mode = $5, learning_until_ms = $6,
           dry_run_period_ms = $7, require_approval = $8, last_new_ms = $9, last_sync_ms = $10, version = $11 WHERE id = $1",
    )
    .bind(m.id)
    .bind(m.lc.state.as_str())
    .bind(m.lc.state_since_ms)
    .bind(m.prev_state.clone())
    .bind(m.lc.target.as_str())
    .bind(m.lc.learning_until_ms)
    .bind(m.lc.dry_run_period_ms)
    .bind(m.lc.require_approval as i64)
    .bind(m.lc.last_new_ms)
    .bind(last_sync)
    .bind(m.version)
    .execute(&mut **tx)
    .await
    .map(drop)
    .map_err(db("saving the model"))
}

#[allow(clippy::too_many_arguments)]
async fn insert_item(
    tx: &mut Transaction<'static, Any>,
    model_id: i64,
    item: &Item,
    origin: &str,
    status: &str,
    hits: i64,
    seen: Option<(i64, i64)>,
    now: i64,
    by: Option<&str>,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO items (model_id, kind, exe, item_key, pattern, origin, status, inherited, hits, first_seen_ms, last_seen_ms, added_ms, added_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $9, $10, $11, $12) RETURNING id",
    )
    .bind(model_id)
    .bind(item.kind())
    .bind(item.exe())
    .bind(item_key(item))
    .bind(item.is_pattern() as i64)
    .bind(origin)
    .bind(status)
    .bind(hits)
    .bind(seen.map(|s| s.0))
    .bind(seen.map(|s| s.1))
    .bind(now)
    .bind(by)
    .fetch_one(&mut **tx)
    .await
    .map_err(db("adding an item"))?;
    r.try_get("id").map_err(db("adding an item"))
}

/// Adds a static item (or marks a learned one as also static); true when the model grew.
async fn insert_static(
    tx: &mut Transaction<'static, Any>,
    model_id: i64,
    item: &Item,
    now: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO items (model_id, kind, exe, item_key, pattern, origin, status, inherited, hits, first_seen_ms, last_seen_ms, added_ms, added_by)
         VALUES ($1, $2, $3, $4, $5, 'static', 'model', 0, 0, NULL, NULL, $6, NULL)
         ON CONFLICT (model_id, kind, item_key) DO NOTHING RETURNING id",
    )
    .bind(model_id)
    .bind(item.kind())
    .bind(item.exe())
    .bind(item_key(item))
    .bind(item.is_pattern() as i64)
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db("adding a static item"))?;
    if r.is_some() {
        return Ok(true);
    }
    sqlx::query("UPDATE items SET origin = 'static' WHERE model_id = $1 AND kind = $2 AND item_key = $3 AND origin = 'learned'")
        .bind(model_id)
        .bind(item.kind())
        .bind(item_key(item))
        .execute(&mut **tx)
        .await
        .map_err(db("marking a static item"))?;
    Ok(false)
}

/// A new digest starts from its predecessor: items in the model and deny rules, with their provenance.
async fn copy_items(tx: &mut Transaction<'static, Any>, from: i64, to: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO items (model_id, kind, exe, item_key, pattern, origin, status, inherited, hits, first_seen_ms, last_seen_ms, added_ms, added_by)
         SELECT $2, kind, exe, item_key, pattern, origin, status, 1, hits, first_seen_ms, last_seen_ms, added_ms, added_by
         FROM items WHERE model_id = $1 AND status IN ('model', 'denied')",
    )
    .bind(from)
    .bind(to)
    .execute(&mut **tx)
    .await
    .map_err(db("copying the predecessor's items"))?;
    sqlx::query(
        "INSERT INTO item_pods (item_id, pod, hits, first_seen_ms, last_seen_ms)
         SELECT n.id, p.pod, p.hits, p.first_seen_ms, p.last_seen_ms
         FROM item_pods p JOIN items o ON o.id = p.item_id JOIN items n ON n.model_id = $2 AND n.kind = o.kind AND n.item_key = o.item_key
         WHERE o.model_id = $1",
    )
    .bind(from)
    .bind(to)
    .execute(&mut **tx)
    .await
    .map_err(db("copying the predecessor's provenance"))?;
    Ok(())
}

async fn accept_candidates(tx: &mut Transaction<'static, Any>, model_id: i64) -> Result<i64> {
    let n = sqlx::query(
        "UPDATE items SET status = 'model' WHERE model_id = $1 AND status = 'candidate'",
    )
    .bind(model_id)
    .execute(&mut **tx)
    .await
    .map_err(db("accepting candidates"))?
    .rows_affected() as i64;
    Ok(n)
}

/// Collapses a directory's files into `dir/*` once an executable writes more
/// than `COLLAPSE_AT` of them (as the sidecar's model does), keeping the
/// provenance of every one in the pattern.
async fn collapse(
    tx: &mut Transaction<'static, Any>,
    model_id: i64,
    f: &nfguard_sidecar::model::FileEntry,
    now: i64,
) -> Result<()> {
    let Some((dir, _)) = f.path.rsplit_once('/') else {
        return Ok(());
    };
    let prefix = format!("{dir}/");
    let rows = sqlx::query(&format!(
        "SELECT {ITEM_COLS} FROM items WHERE model_id = $1 AND kind = 'file' AND exe = $2 AND status = 'model' AND origin = 'learned'"
    ))
    .bind(model_id)
    .bind(&f.exe)
    .fetch_all(&mut **tx)
    .await
    .map_err(db("collapsing"))?;
    let mut siblings = Vec::new();
    for r in &rows {
        let it = item_row(r)?;
        if let Item::File(e) = &it.item {
            if e.op == f.op
                && e.path.starts_with(&prefix)
                && !e.path[prefix.len()..].contains('/')
                && !e.path.ends_with("/*")
            {
                siblings.push(it);
            }
        }
    }
    if siblings.len() <= COLLAPSE_AT {
        return Ok(());
    }
    let pattern = Item::File(nfguard_sidecar::model::FileEntry {
        exe: f.exe.clone(),
        op: f.op.clone(),
        path: format!("{prefix}*"),
    });
    let hits: i64 = siblings.iter().map(|s| s.hits).sum();
    let first = siblings.iter().filter_map(|s| s.first_seen_ms).min();
    let last = siblings.iter().filter_map(|s| s.last_seen_ms).max();
    let pid = insert_item(
        tx,
        model_id,
        &pattern,
        "learned",
        MODEL,
        hits,
        first.zip(last),
        now,
        None,
    )
    .await?;
    for s in &siblings {
        sqlx::query(
            "INSERT INTO item_pods (item_id, pod, hits, first_seen_ms, last_seen_ms) SELECT $1, pod, hits, first_seen_ms, last_seen_ms FROM item_pods WHERE item_id = $2
             ON CONFLICT (item_id, pod) DO UPDATE SET hits = item_pods.hits + excluded.hits,
               first_seen_ms = CASE WHEN item_pods.first_seen_ms > excluded.first_seen_ms THEN excluded.first_seen_ms ELSE item_pods.first_seen_ms END,
               last_seen_ms = CASE WHEN item_pods.last_seen_ms < excluded.last_seen_ms THEN excluded.last_seen_ms ELSE item_pods.last_seen_ms END",
        )
        .bind(pid)
        .bind(s.id)
        .execute(&mut **tx)
        .await
        .map_err(db("collapsing provenance"))?;
        sqlx::query("DELETE FROM item_pods WHERE item_id = $1")
            .bind(s.id)
            .execute(&mut **tx)
            .await
            .map_err(db("collapsing"))?;
        sqlx::query("DELETE FROM items WHERE id = $1")
            .bind(s.id)
            .execute(&mut **tx)
            .await
            .map_err(db("collapsing"))?;
    }
    Ok(())
}

/// The sidecar model of a model: its items in status `model` (cached per version).
async fn render(tx: &mut Transaction<'static, Any>, model_id: i64) -> Result<Model> {
    let r = sqlx::query("SELECT version, rendered_version, rendered FROM models WHERE id = $1")
        .bind(model_id)
        .fetch_one(&mut **tx)
        .await
        .map_err(db("rendering"))?;
    let version: i64 = r.try_get("version").map_err(db("rendering"))?;
    let rv: i64 = r.try_get("rendered_version").map_err(db("rendering"))?;
    if rv == version {
        if let Some(text) = r
            .try_get::<Option<String>, _>("rendered")
            .map_err(db("rendering"))?
        {
            if let Ok(m) = serde_json::from_str(&text) {
                return Ok(m);
            }
        }
    }
    let rows = sqlx::query("SELECT item_key FROM items WHERE model_id = $1 AND status = 'model'")
        .bind(model_id)
        .fetch_all(&mut **tx)
        .await
        .map_err(db("rendering"))?;
    let mut model = Model::default();
    for r in rows {
        let k: String = r.try_get("item_key").map_err(db("rendering"))?;
        if let Ok(item) = serde_json::from_str::<Item>(&k) {
            item.add_to(&mut model);
        }
    }
    sqlx::query("UPDATE models SET rendered_version = $2, rendered = $3 WHERE id = $1")
        .bind(model_id)
        .bind(version)
        .bind(serde_json::to_string(&model).unwrap_or_default())
        .execute(&mut **tx)
        .await
        .map_err(db("caching a rendering"))?;
    Ok(model)
}

#[allow(clippy::too_many_arguments)]
pub async fn audit(
    tx: &mut Transaction<'static, Any>,
    now: i64,
    actor: &str,
    action: &str,
    workload: Option<&str>,
    model: Option<i64>,
    detail: Value,
) -> Result<()> {
    sqlx::query("INSERT INTO audit (time_ms, actor, action, workload_id, model_id, detail) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(workload)
        .bind(model)
        .bind(detail.to_string())
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(db("writing the audit log"))
}

/// `$from, $from+1, ...` (n of them).
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Counts the observations of items the model has under their exact key (the
/// steady state of an active workload) with three statements for the batch:
/// which exist, their counts, the pod's provenance. Returns the others (new
/// items, or paths a pattern covers), for the one-by-one path.
async fn count_known(
    tx: &mut Transaction<'static, Any>,
    model_id: i64,
    observations: &[Observed],
    pod: &str,
) -> Result<Vec<Observed>> {
    // Merge repeats of one key (a batch is already one per item, but be exact).
    let mut merged: BTreeMap<String, Observed> = BTreeMap::new();
    for o in observations {
        let k = item_key(&o.item);
        match merged.get_mut(&k) {
            Some(m) => {
                m.count += o.count;
                m.first_ms = m.first_ms.min(o.first_ms);
                m.last_ms = m.last_ms.max(o.last_ms);
            }
            None => {
                merged.insert(k, o.clone());
            }
        }
    }
    let keys: Vec<&String> = merged.keys().collect();
    let mut ids: BTreeMap<String, i64> = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let sql = format!(
            "SELECT id, item_key FROM items WHERE model_id = $1 AND item_key IN ({})",
            placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(model_id);
        for k in chunk {
            q = q.bind(k.as_str());
        }
        for r in q.fetch_all(&mut **tx).await.map_err(db("finding items"))? {
            ids.insert(
                r.try_get("item_key").unwrap_or_default(),
                r.try_get("id").unwrap_or(0),
            );
        }
    }
    let known: Vec<(i64, &Observed)> = merged
        .iter()
        .filter_map(|(k, o)| ids.get(k).map(|id| (*id, o)))
        .collect();
    for chunk in known.chunks(200) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 2 + i * 4;
                format!(
                    "SELECT CAST(${b} AS BIGINT) AS id, CAST(${} AS BIGINT) AS c, CAST(${} AS BIGINT) AS f, CAST(${} AS BIGINT) AS l",
                    b + 1,
                    b + 2,
                    b + 3
                )
            })
            .collect();
        let values = rows.join(" UNION ALL ");
        let update = format!(
            "UPDATE items SET hits = items.hits + v.c,
               first_seen_ms = CASE WHEN items.first_seen_ms IS NULL OR items.first_seen_ms > v.f THEN v.f ELSE items.first_seen_ms END,
               last_seen_ms = CASE WHEN items.last_seen_ms IS NULL OR items.last_seen_ms < v.l THEN v.l ELSE items.last_seen_ms END
             FROM ({values}) AS v WHERE items.id = v.id AND items.model_id = $1"
        );
        let mut q = sqlx::query(&update).bind(model_id);
        for (id, o) in chunk {
            q = q
                .bind(*id)
                .bind(o.count as i64)
                .bind(o.first_ms)
                .bind(o.last_ms);
        }
        q.execute(&mut **tx).await.map_err(db("counting items"))?;
        let upsert = format!(
            "INSERT INTO item_pods (item_id, pod, hits, first_seen_ms, last_seen_ms)
             SELECT v.id, $1, v.c, v.f, v.l FROM ({values}) AS v WHERE true
             ON CONFLICT (item_id, pod) DO UPDATE SET hits = item_pods.hits + excluded.hits,
               first_seen_ms = CASE WHEN item_pods.first_seen_ms > excluded.first_seen_ms THEN excluded.first_seen_ms ELSE item_pods.first_seen_ms END,
               last_seen_ms = CASE WHEN item_pods.last_seen_ms < excluded.last_seen_ms THEN excluded.last_seen_ms ELSE item_pods.last_seen_ms END"
        );
        let mut q = sqlx::query(&upsert).bind(pod);
        for (id, o) in chunk {
            q = q
                .bind(*id)
                .bind(o.count as i64)
                .bind(o.first_ms)
                .bind(o.last_ms);
        }
        q.execute(&mut **tx)
            .await
            .map_err(db("recording provenance"))?;
    }
    Ok(merged
        .into_iter()
        .filter(|(k, _)| !ids.contains_key(k))
        .map(|(_, o)| o)
        .collect())
}
