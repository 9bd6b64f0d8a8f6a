//! The emulator's state in one SQLite file beside the capture store (`emulator.sqlite`, mode
//! 0600: it holds the emulated account's token and the `WSK_` keys), so services, webhooks,
//! keys and delivered events survive restarts.

use crate::EmulatorError;
use crate::model::{AuthyWebhook, EventRecord, Service, Webhook};
use rusqlite::{Connection, OptionalExtension as _, Row, params};
use serde_json::Value;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::Path;
use twk_providers::Secret;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS services (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL UNIQUE, friendly_name TEXT NOT NULL,
  created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS webhooks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL UNIQUE, service_sid TEXT NOT NULL,
  friendly_name TEXT NOT NULL, event_types TEXT NOT NULL, url TEXT NOT NULL,
  method TEXT NOT NULL, status TEXT NOT NULL, version TEXT NOT NULL,
  created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS authy_webhooks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  url TEXT NOT NULL, events TEXT NOT NULL, signing_key TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT, api TEXT NOT NULL, event TEXT NOT NULL,
  time_ms INTEGER NOT NULL, request_id TEXT NOT NULL, objects TEXT NOT NULL,
  deliveries TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_time ON events (time_ms);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id);
";

/// The most events kept for the reporting API; older ones are dropped.
pub const MAX_EVENTS: i64 = 10_000;

/// An open state file.
pub struct Store {
    conn: Connection,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn db(e: rusqlite::Error) -> EmulatorError {
    EmulatorError::State(e.to_string())
}

fn list_json(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn list_from(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

/// A stored enum that no longer parses is a corrupt file, not a reason to panic.
fn parsed<T: std::str::FromStr<Err = String>>(row: &Row<'_>, col: &str) -> rusqlite::Result<T> {
    let s: String = row.get(col)?;
    s.parse::<T>().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
    })
}

fn service_row(r: &Row<'_>) -> rusqlite::Result<Service> {
    Ok(Service {
        sid: r.get("sid")?,
        friendly_name: r.get("friendly_name")?,
        created: r.get("created")?,
        updated: r.get("updated")?,
    })
}

fn webhook_row(r: &Row<'_>) -> rusqlite::Result<Webhook> {
    Ok(Webhook {
        sid: r.get("sid")?,
        service_sid: r.get("service_sid")?,
        friendly_name: r.get("friendly_name")?,
        event_types: list_from(&r.get::<_, String>("event_types")?),
        url: r.get("url")?,
        method: parsed(r, "method")?,
        status: parsed(r, "status")?,
        version: parsed(r, "version")?,
        created: r.get("created")?,
        updated: r.get("updated")?,
    })
}

fn authy_row(r: &Row<'_>) -> rusqlite::Result<AuthyWebhook> {
    Ok(AuthyWebhook {
        id: r.get("id")?,
        name: r.get("name")?,
        url: r.get("url")?,
        events: list_from(&r.get::<_, String>("events")?),
        signing_key: Secret::new(r.get::<_, String>("signing_key")?),
        created: r.get("created")?,
    })
}

fn event_row(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let json = |col: &str| -> rusqlite::Result<Value> {
        Ok(serde_json::from_str(&r.get::<_, String>(col)?).unwrap_or(Value::Null))
    };
    Ok(EventRecord {
        api: parsed(r, "api")?,
        event: r.get("event")?,
        time_ms: r.get("time_ms")?,
        request_id: r.get("request_id")?,
        objects: json("objects")?,
        deliveries: json("deliveries")?,
    })
}

/// Which past events the reporting API asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Exact event names (any of them); empty: all.
    pub events: Vec<String>,
    /// Not before, Unix ms, inclusive.
    pub since_ms: Option<i64>,
    /// Not after, Unix ms, inclusive.
    pub until_ms: Option<i64>,
    /// Rows to skip.
    pub offset: i64,
    /// Rows to return.
    pub limit: i64,
}

impl Store {
    /// Opens (creating, 0600 in a 0700 directory) the state file at `path`.
    pub fn open(path: &Path) -> Result<Store, EmulatorError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| EmulatorError::State(format!("creating {}: {e}", dir.display())))?;
        }
        // Create it 0600 before SQLite does (SQLite would use the umask).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| EmulatorError::State(format!("opening {}: {e}", path.display())))?;
        let conn = Connection::open(path).map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Store { conn })
    }

    /// A value of the `meta` table (the account's credentials, the Authy app's keys).
    pub fn meta(&self, key: &str) -> Result<Option<String>, EmulatorError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(db)
    }

    /// The stored value of `key`, or `make()`'s, stored first.
    pub fn meta_or(
        &self,
        key: &str,
        make: impl FnOnce() -> String,
    ) -> Result<String, EmulatorError> {
        if let Some(v) = self.meta(key)? {
            return Ok(v);
        }
        // Another process may be making it at the same moment: whichever wrote first wins,
        // and both read that one.
        self.conn
            .execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)",
                [key, &make()],
            )
            .map_err(db)?;
        self.meta(key)?
            .ok_or_else(|| EmulatorError::State(format!("{key} vanished from the state file")))
    }

    /// Sets a `meta` value.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .map(drop)
            .map_err(db)
    }

    /// Adds a service.
    pub fn insert_service(&self, s: &Service) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "INSERT INTO services (sid, friendly_name, created, updated) VALUES (?1, ?2, ?3, ?4)",
                params![s.sid, s.friendly_name, s.created, s.updated],
            )
            .map(drop)
            .map_err(db)
    }

    /// One service.
    pub fn service(&self, sid: &str) -> Result<Option<Service>, EmulatorError> {
        self.conn
            .query_row("SELECT * FROM services WHERE sid = ?1", [sid], service_row)
            .optional()
            .map_err(db)
    }

    /// A page of services, oldest first, and how many there are.
    pub fn services(&self, offset: i64, limit: i64) -> Result<(Vec<Service>, i64), EmulatorError> {
        let mut st = self
            .conn
            .prepare("SELECT * FROM services ORDER BY seq LIMIT ?1 OFFSET ?2")
            .map_err(db)?;
        let rows = st
            .query_map(params![limit, offset], service_row)
            .and_then(Iterator::collect)
            .map_err(db)?;
        let n = self
            .conn
            .query_row("SELECT COUNT(*) FROM services", [], |r| r.get(0))
            .map_err(db)?;
        Ok((rows, n))
    }

    /// Renames a service.
    pub fn update_service(&self, s: &Service) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "UPDATE services SET friendly_name = ?2, updated = ?3 WHERE sid = ?1",
                params![s.sid, s.friendly_name, s.updated],
            )
            .map(drop)
            .map_err(db)
    }

    /// Deletes a service and its webhooks, both or neither; whether it existed.
    pub fn delete_service(&self, sid: &str) -> Result<bool, EmulatorError> {
        let tx = self.conn.unchecked_transaction().map_err(db)?;
        tx.execute("DELETE FROM webhooks WHERE service_sid = ?1", [sid])
            .map_err(db)?;
        let n = tx
            .execute("DELETE FROM services WHERE sid = ?1", [sid])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n > 0)
    }

    /// Adds a webhook.
    pub fn insert_webhook(&self, w: &Webhook) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "INSERT INTO webhooks (sid, service_sid, friendly_name, event_types, url, method,
                 status, version, created, updated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    w.sid,
                    w.service_sid,
                    w.friendly_name,
                    list_json(&w.event_types),
                    w.url,
                    w.method.as_str(),
                    w.status.as_str(),
                    w.version.as_str(),
                    w.created,
                    w.updated
                ],
            )
            .map(drop)
            .map_err(db)
    }

    /// Writes every field of an existing webhook.
    pub fn update_webhook(&self, w: &Webhook) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "UPDATE webhooks SET friendly_name = ?2, event_types = ?3, url = ?4, method = ?5,
                 status = ?6, version = ?7, updated = ?8 WHERE sid = ?1",
                params![
                    w.sid,
                    w.friendly_name,
                    list_json(&w.event_types),
                    w.url,
                    w.method.as_str(),
                    w.status.as_str(),
                    w.version.as_str(),
                    w.updated
                ],
            )
            .map(drop)
            .map_err(db)
    }

    /// One webhook of a service.
    pub fn webhook(&self, service: &str, sid: &str) -> Result<Option<Webhook>, EmulatorError> {
        self.conn
            .query_row(
                "SELECT * FROM webhooks WHERE service_sid = ?1 AND sid = ?2",
                [service, sid],
                webhook_row,
            )
            .optional()
            .map_err(db)
    }

    /// A page of a service's webhooks, oldest first, and how many it has.
    pub fn webhooks(
        &self,
        service: &str,
        offset: i64,
        limit: i64,
    ) -> Result<(Vec<Webhook>, i64), EmulatorError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT * FROM webhooks WHERE service_sid = ?1 ORDER BY seq LIMIT ?2 OFFSET ?3",
            )
            .map_err(db)?;
        let rows = st
            .query_map(params![service, limit, offset], webhook_row)
            .and_then(Iterator::collect)
            .map_err(db)?;
        let n = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM webhooks WHERE service_sid = ?1",
                [service],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok((rows, n))
    }

    /// Every webhook (of one service, when given), oldest first.
    pub fn all_webhooks(&self, service: Option<&str>) -> Result<Vec<Webhook>, EmulatorError> {
        let mut st = self
            .conn
            .prepare("SELECT * FROM webhooks WHERE ?1 IS NULL OR service_sid = ?1 ORDER BY seq")
            .map_err(db)?;
        st.query_map([service], webhook_row)
            .and_then(Iterator::collect)
            .map_err(db)
    }

    /// Deletes a webhook; whether it existed.
    pub fn delete_webhook(&self, service: &str, sid: &str) -> Result<bool, EmulatorError> {
        let n = self
            .conn
            .execute(
                "DELETE FROM webhooks WHERE service_sid = ?1 AND sid = ?2",
                [service, sid],
            )
            .map_err(db)?;
        Ok(n > 0)
    }

    /// Adds an Authy webhook.
    pub fn insert_authy(&self, w: &AuthyWebhook) -> Result<(), EmulatorError> {
        let key = w.signing_key.expose_str().unwrap_or_default();
        self.conn
            .execute(
                "INSERT INTO authy_webhooks (id, name, url, events, signing_key, created)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![w.id, w.name, w.url, list_json(&w.events), key, w.created],
            )
            .map(drop)
            .map_err(db)
    }

    /// Every Authy webhook, oldest first.
    pub fn authy_webhooks(&self) -> Result<Vec<AuthyWebhook>, EmulatorError> {
        let mut st = self
            .conn
            .prepare("SELECT * FROM authy_webhooks ORDER BY seq")
            .map_err(db)?;
        st.query_map([], authy_row)
            .and_then(Iterator::collect)
            .map_err(db)
    }

    /// Deletes an Authy webhook; whether it existed.
    pub fn delete_authy(&self, id: &str) -> Result<bool, EmulatorError> {
        let n = self
            .conn
            .execute("DELETE FROM authy_webhooks WHERE id = ?1", [id])
            .map_err(db)?;
        Ok(n > 0)
    }

    /// Records a delivered event, dropping the oldest past [`MAX_EVENTS`].
    pub fn insert_event(&self, e: &EventRecord) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "INSERT INTO events (api, event, time_ms, request_id, objects, deliveries)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    e.api.as_str(),
                    e.event,
                    e.time_ms,
                    e.request_id,
                    e.objects.to_string(),
                    e.deliveries.to_string()
                ],
            )
            .map_err(db)?;
        self.conn
            .execute(
                "DELETE FROM events WHERE seq <= (SELECT MAX(seq) FROM events) - ?1",
                [MAX_EVENTS],
            )
            .map(drop)
            .map_err(db)
    }

    /// Fills in an event's deliveries once they are done.
    pub fn set_deliveries(
        &self,
        request_id: &str,
        deliveries: &Value,
    ) -> Result<(), EmulatorError> {
        self.conn
            .execute(
                "UPDATE events SET deliveries = ?2 WHERE request_id = ?1",
                params![request_id, deliveries.to_string()],
            )
            .map(drop)
            .map_err(db)
    }

    /// Past events matching `q`, oldest first, and how many match in all.
    pub fn events(&self, q: &EventQuery) -> Result<(Vec<EventRecord>, i64), EmulatorError> {
        let names = serde_json::to_string(&q.events).unwrap_or_else(|_| "[]".to_owned());
        let filter = "(?1 = '[]' OR event IN (SELECT value FROM json_each(?1)))
             AND (?2 IS NULL OR time_ms >= ?2) AND (?3 IS NULL OR time_ms <= ?3)";
        let mut st = self
            .conn
            .prepare(&format!(
                "SELECT * FROM events WHERE {filter} ORDER BY time_ms, seq LIMIT ?4 OFFSET ?5"
            ))
            .map_err(db)?;
        let rows = st
            .query_map(
                params![names, q.since_ms, q.until_ms, q.limit, q.offset],
                event_row,
            )
            .and_then(Iterator::collect)
            .map_err(db)?;
        let n = self
            .conn
            .query_row(
                &format!("SELECT COUNT(*) FROM events WHERE {filter}"),
                params![names, q.since_ms, q.until_ms],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok((rows, n))
    }

    /// How many Verify webhooks and Authy webhooks there are (for the start banner).
    pub fn counts(&self) -> Result<(i64, i64), EmulatorError> {
        let count = |sql: &str| self.conn.query_row(sql, [], |r| r.get::<_, i64>(0));
        Ok((
            count("SELECT COUNT(*) FROM webhooks").map_err(db)?,
            count("SELECT COUNT(*) FROM authy_webhooks").map_err(db)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Api, Method, Status, Version, sid};
    use serde_json::json;

    fn webhook(service: &str, n: usize) -> Webhook {
        Webhook {
            sid: sid("YW"),
            service_sid: service.into(),
            friendly_name: format!("w{n}"),
            event_types: vec!["*".into()],
            url: "http://127.0.0.1:1/hook".into(),
            method: Method::Post,
            status: Status::Enabled,
            version: Version::V2,
            created: 1,
            updated: 1,
        }
    }

    #[test]
    fn state_survives_reopening_and_the_file_is_private() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("sub/emulator.sqlite");
        let service = sid("VA");
        let token = {
            let s = Store::open(&path).expect("open");
            s.insert_service(&Service {
                sid: service.clone(),
                friendly_name: "svc".into(),
                created: 1,
                updated: 1,
            })
            .expect("svc");
            s.insert_webhook(&webhook(&service, 0)).expect("wh");
            s.meta_or("auth_token", || "t0k".into()).expect("meta")
        };
        let s = Store::open(&path).expect("reopen");
        assert_eq!(
            s.meta_or("auth_token", || "other".into()).expect("m"),
            token
        );
        assert_eq!(s.webhooks(&service, 0, 50).expect("list").1, 1);
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn pages_and_deletes_are_per_service() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(&dir.path().join("e.sqlite")).expect("open");
        let (a, b) = (sid("VA"), sid("VA"));
        for n in 0..5 {
            s.insert_webhook(&webhook(&a, n)).expect("a");
        }
        s.insert_webhook(&webhook(&b, 9)).expect("b");
        let (page, total) = s.webhooks(&a, 2, 2).expect("page");
        assert_eq!(total, 5);
        let names: Vec<_> = page.iter().map(|w| w.friendly_name.as_str()).collect();
        assert_eq!(names, ["w2", "w3"]);
        let victim = &page[0];
        assert!(!s.delete_webhook(&b, &victim.sid).expect("wrong service"));
        assert!(s.delete_webhook(&a, &victim.sid).expect("del"));
        assert_eq!(s.all_webhooks(None).expect("all").len(), 5);
        assert!(s.delete_service(&a).is_ok());
        assert_eq!(s.all_webhooks(None).expect("all").len(), 1);
    }

    #[test]
    fn events_filter_by_name_and_inclusive_time_range() {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Store::open(&dir.path().join("e.sqlite")).expect("open");
        for (event, t) in [("a", 10), ("b", 20), ("a", 30), ("a", 40)] {
            s.insert_event(&EventRecord {
                api: Api::Authy,
                event: event.into(),
                time_ms: t,
                request_id: format!("r{t}"),
                objects: json!({"t": t}),
                deliveries: json!([]),
            })
            .expect("ins");
        }
        let q = EventQuery {
            events: vec!["a".into()],
            since_ms: Some(10),
            until_ms: Some(30),
            offset: 0,
            limit: 50,
        };
        let (rows, n) = s.events(&q).expect("q");
        assert_eq!(n, 2);
        assert_eq!(rows.iter().map(|r| r.time_ms).collect::<Vec<_>>(), [10, 30]);
        let all = s.events(&EventQuery {
            limit: 1,
            offset: 3,
            ..Default::default()
        });
        assert_eq!(all.expect("all").0[0].request_id, "r40");
    }
}
