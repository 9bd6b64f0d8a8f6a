//! Executes the model's [`Load`] requests against the capture store (a local SQLite file) and
//! turns the answers into [`Msg`]s. This is the only place the inspector reads data.

use crate::InspectorError;
use crate::model::{Cmd, Counts, Intent, Load, Model, Msg, Start, update};
use twk_capture::{Filter, LintCode, Order, StatusFilter, Store, Summary};
use twk_providers::Verdict;

/// A read connection to the capture store.
#[derive(Debug)]
pub struct Loader {
    store: Store,
}

impl Loader {
    /// Wraps a store opened for reading (e.g. `Recorder::reader()`).
    pub fn new(store: Store) -> Loader {
        Loader { store }
    }

    /// The underlying store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Rows `[offset, offset + limit)` of the newest-first list. SQLite skips `OFFSET` rows one
    /// by one, so the window is read from whichever end is nearer (oldest-first, then
    /// reversed, for the bottom half): the cost is bounded by half the list, and near either
    /// end it is a few rows.
    fn window(
        &self,
        filter: &Filter,
        total: u64,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<Summary>, InspectorError> {
        let end = offset.saturating_add(limit).min(total);
        let from_oldest = total.saturating_sub(end);
        if from_oldest < offset {
            let mut rows = self.store.list(&Filter {
                order: Order::OldestFirst,
                offset: from_oldest,
                limit: Some(end.saturating_sub(offset)),
                ..filter.clone()
            })?;
            rows.reverse();
            Ok(rows)
        } else {
            Ok(self.store.list(&Filter {
                order: Order::NewestFirst,
                offset,
                limit: Some(limit),
                ..filter.clone()
            })?)
        }
    }

    /// Answers one request.
    pub fn load(&self, load: &Load) -> Result<Msg, InspectorError> {
        match load {
            Load::Rows {
                generation,
                filter,
                start,
                limit,
                known_total,
            } => {
                let total = match known_total {
                    Some(t) => *t,
                    None => self.store.count(filter)?,
                };
                let (offset, anchor) = match *start {
                    Start::Offset(o) => (o.min(total.saturating_sub(1)), None),
                    Start::Around { id, before } => {
                        let newer = self.store.count(&Filter {
                            after_id: Some(id),
                            ..(**filter).clone()
                        })?;
                        let pos = newer.min(total.saturating_sub(1));
                        (pos.saturating_sub(before), Some(pos))
                    }
                };
                let rows = self.window(filter, total, offset, *limit)?;
                Ok(Msg::Rows {
                    generation: *generation,
                    start: offset,
                    total,
                    anchor,
                    rows,
                })
            }
            Load::Detail(id) => Ok(match self.store.get(*id)? {
                Some(x) => {
                    // The other leg of a Basic-auth handshake, for the Auth tab's timeline
                    // (retention may have removed it: then the tab says so).
                    let partner = match x.handshake.and_then(|h| h.with) {
                        Some(p) => self.store.get(p)?.map(Box::new),
                        None => None,
                    };
                    Msg::Detail {
                        stored: Box::new(x),
                        partner,
                    }
                }
                None => Msg::DetailMissing(*id),
            }),
            Load::Leg1 { row, id } => Ok(Msg::Leg1 {
                row: *row,
                summary: self.store.get(*id)?.map(|x| Box::new(x.summary())),
            }),
            Load::Poll => Ok(Msg::Polled(self.store.max_id()?.unwrap_or(0))),
            Load::Counts(tunnel) => {
                // Deliveries, as the list shows them: a Basic-auth handshake is one (its
                // leg 1's 401 is the challenge doing its job, not an error).
                let scoped = |f: Filter| Filter {
                    name: tunnel.clone(),
                    collapse_handshakes: true,
                    ..f
                };
                // The relay's own answers (refused, missed) are counted apart from the errors.
                let status = |s| {
                    scoped(Filter {
                        status: Some(s),
                        refused: Some(false),
                        missed: Some(false),
                        ..Filter::default()
                    })
                };
                let refused = scoped(Filter {
                    refused: Some(true),
                    ..Filter::default()
                });
                let missed = scoped(Filter {
                    missed: Some(true),
                    refused: Some(false),
                    ..Filter::default()
                });
                let verdict = |v: Verdict| {
                    scoped(Filter {
                        verdict: Some(v),
                        ..Filter::default()
                    })
                };
                let max_id = self.store.max_id()?.unwrap_or(0);
                let total = self.store.count(&scoped(Filter::default()))?;
                let other = match tunnel {
                    Some(_) => {
                        let all = Filter {
                            collapse_handshakes: true,
                            ..Filter::default()
                        };
                        self.store.count(&all)?.saturating_sub(total)
                    }
                    None => 0,
                };
                // A 2xx the provider cannot use (TwiML it cannot run) is an error too.
                let mut errors = 0;
                for code in LintCode::ALL.into_iter().filter(|c| c.spoils_a_success()) {
                    errors += self.store.count(&Filter {
                        lint: Some(code),
                        ..status(StatusFilter::Class(2))
                    })?;
                }
                for s in [
                    StatusFilter::Class(4),
                    StatusFilter::Class(5),
                    StatusFilter::NoResponse,
                ] {
                    errors += self.store.count(&status(s))?;
                }
                Ok(Msg::Counts(Counts {
                    total,
                    errors,
                    refused: self.store.count(&refused)?,
                    missed: self.store.count(&missed)?,
                    invalid: self.store.count(&verdict(Verdict::Invalid))?
                        + self.store.count(&verdict(Verdict::Malformed))?,
                    max_id,
                    other,
                }))
            }
        }
    }

    /// Runs `msg` through [`update`], answers every load it asks for (feeding the answers
    /// back in), and returns the intents for the host. A failed load becomes an error notice.
    pub fn dispatch(&self, model: &mut Model, msg: Msg) -> Vec<Intent> {
        let mut intents = Vec::new();
        let mut queue = vec![msg];
        // Bounded: each answer can only ask for a few more loads.
        let mut budget = 64;
        while let Some(msg) = queue.pop() {
            for cmd in update(model, msg) {
                match cmd {
                    Cmd::Intent(i) => intents.push(i),
                    Cmd::Load(load) => {
                        budget -= 1;
                        if budget == 0 {
                            tracing::warn!("inspector load loop cut short");
                            return intents;
                        }
                        match self.load(&load) {
                            Ok(answer) => queue.push(answer),
                            Err(e) => {
                                if let Load::Rows { .. } = load {
                                    model.list.loading = false;
                                }
                                queue.push(Msg::Notice(
                                    twk_sanitize::error_chain(&e),
                                    crate::model::Level::Error,
                                ));
                            }
                        }
                    }
                }
            }
        }
        intents
    }
}
