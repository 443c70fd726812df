//! What the simulator sends for the demo's settings, counted by running
//! the same simulator: the figures the demo's summary is checked against.

use jobs::produce::sim::{Fleet, Kind, SimSettings, Simulator};
use std::collections::{BTreeMap, HashSet};

/// What the simulator sends for the demo's settings.
pub struct Expected {
    pub messages: u64,
    pub valid_events: u64,
    pub valid_fines: u64,
    pub kinds: BTreeMap<Kind, u64>,
}

pub fn expected(settings: &SimSettings, fleet: &Fleet) -> Expected {
    let mut events = HashSet::new();
    let mut fines = HashSet::new();
    let mut messages = 0;
    let mut sim = Simulator::new(settings.clone(), fleet);
    for (kind, record) in sim.by_ref() {
        messages += 1;
        let field = match kind {
            Kind::Telemetry => "event_id",
            Kind::Fine => "fine_id",
            _ => continue,
        };
        let id = record
            .value
            .as_deref()
            .and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok())
            .and_then(|v| v[field].as_str().map(str::to_string));
        if let Some(id) = id {
            if kind == Kind::Telemetry {
                events.insert(id);
            } else {
                fines.insert(id);
            }
        }
    }
    Expected {
        messages,
        valid_events: events.len() as u64,
        valid_fines: fines.len() as u64,
        kinds: sim.counts.clone(),
    }
}
