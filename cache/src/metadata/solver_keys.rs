//! The solver's key index: what a second process needs to hit what the first built.
//! The solver owns the meaning of keys and result ids; this only stores them durably.

use rusqlite::{OptionalExtension as _, params};

use super::{Fail, MetadataDb, MetadataError, now};

impl MetadataDb {
    /// The row for `key`: its canonical key and result ids, if stored.
    pub fn solver_key(&self, key: &str) -> Result<Option<(String, Vec<String>)>, MetadataError> {
        self.read("looking up solver key", |c| {
            let row: Option<(String, String)> = c
                .prepare_cached("SELECT canonical, results FROM solver_keys WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            row.map(|(canonical, results)| {
                let ids: Vec<String> = serde_json::from_str(&results).map_err(|e| {
                    Fail::Domain(MetadataError::Corrupt {
                        id: format!("solver key {key}"),
                        reason: format!("results are not a JSON list of strings: {e}"),
                    })
                })?;
                Ok((canonical, ids))
            })
            .transpose()
        })
    }

    /// Stores (or replaces) the row for `key`.
    pub fn put_solver_key(
        &self,
        key: &str,
        canonical: &str,
        results: &[String],
    ) -> Result<(), MetadataError> {
        let json = serde_json::to_string(results).unwrap_or_else(|_| "[]".into());
        self.write("storing solver key", |tx| {
            tx.execute(
                "INSERT INTO solver_keys (key, canonical, results, created_at) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (key) DO UPDATE SET canonical = excluded.canonical, results = excluded.results",
                params![key, canonical, json, now()],
            )?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_reopen_and_replace() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = MetadataDb::open(dir.path()).unwrap();
            assert_eq!(db.solver_key("k").unwrap(), None);
            db.put_solver_key("k", "c1", &["a".into()]).unwrap();
            db.put_solver_key("k", "c2", &["b".into(), "scratch".into()])
                .unwrap();
        }
        let db = MetadataDb::open(dir.path()).unwrap();
        assert_eq!(
            db.solver_key("k").unwrap(),
            Some(("c2".to_owned(), vec!["b".to_owned(), "scratch".to_owned()]))
        );
    }
}
