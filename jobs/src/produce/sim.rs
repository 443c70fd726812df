//! The telematics simulator: a seeded, deterministic stream of the spec's
//! two topics. Vehicles drive journeys (stops, city, road, motorway) with
//! plausible speed, gear and rpm, mostly consistent and sometimes not
//! (speeding, wrong gear, over-revving); about one fine per fifty events;
//! and a configurable share of bad messages of every kind the spec names,
//! plus exact re-sends (duplicates).
//!
//! The same seed, fleet and start time give byte-identical messages.

use super::Record;
use chrono::{DateTime, Duration as TimeDelta, SecondsFormat, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;

/// What a simulated message is, for the run's summary and for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Telemetry,
    Fine,
    /// An exact re-send of an earlier message.
    Duplicate,
    MalformedJson,
    EmptyValue,
    Tombstone,
    Missing,
    Type,
    Range,
    FutureEventTime,
}

impl Kind {
    /// Bad kinds, in the order they are drawn.
    const BAD: [Kind; 8] = [
        Kind::MalformedJson,
        Kind::EmptyValue,
        Kind::Tombstone,
        Kind::Missing,
        Kind::Type,
        Kind::Range,
        Kind::FutureEventTime,
        Kind::Duplicate,
    ];
}

#[derive(Clone, Debug)]
pub struct SimSettings {
    pub seed: u64,
    pub telemetry_topic: String,
    pub fines_topic: String,
    /// Telemetry messages to make (good, bad and duplicates); fines come on top.
    pub events: u64,
    /// Event time of the first event.
    pub start: DateTime<Utc>,
    /// How often each vehicle reports.
    pub report_every: std::time::Duration,
    /// Share of telemetry messages that are bad or duplicates, in [0, 1].
    pub bad_share: f64,
    /// Share of events from vehicles and drivers absent from the reference data.
    pub unknown_share: f64,
    pub fines_per_event: f64,
}

impl Default for SimSettings {
    fn default() -> Self {
        Self {
            seed: 42,
            telemetry_topic: "vehicle-telemetry".into(),
            fines_topic: "traffic-fines".into(),
            events: 10_000,
            start: DateTime::parse_from_rfc3339("2026-11-21T08:00:00Z")
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default(),
            report_every: std::time::Duration::from_secs(5),
            bad_share: 0.02,
            unknown_share: 0.005,
            fines_per_event: 0.02,
        }
    }
}

/// The vehicles and drivers to simulate.
#[derive(Clone, Debug, Default)]
pub struct Fleet {
    pub vehicles: Vec<String>,
    pub drivers: Vec<String>,
}

impl Fleet {
    /// The ids of `vehicles.csv` and `drivers.csv` in a data folder.
    pub fn from_data_dir(dir: &Path) -> Result<Self, String> {
        let ids = |file: &str| -> Result<Vec<String>, String> {
            let path = dir.join(file);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            // Ids are the first column and never quoted in these files.
            let ids: Vec<String> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split(',').next())
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect();
            if ids.is_empty() {
                return Err(format!("{}: no rows", path.display()));
            }
            Ok(ids)
        };
        Ok(Self {
            vehicles: ids("vehicles.csv")?,
            drivers: ids("drivers.csv")?,
        })
    }

    /// A fleet without reference files: V0001.., D0001..
    pub fn synthetic(vehicles: usize, drivers: usize) -> Self {
        Self {
            vehicles: (1..=vehicles.max(1)).map(|i| format!("V{i:04}")).collect(),
            drivers: (1..=drivers.max(1)).map(|i| format!("D{i:04}")).collect(),
        }
    }
}

#[derive(Clone, Debug)]
struct Vehicle {
    id: String,
    driver: String,
    speed: f64,
    target: f64,
    lat: f64,
    lon: f64,
    heading: f64,
    fuel: f64,
    /// Steps left in the current leg of the journey.
    leg: u32,
}

/// The simulator: an iterator of (kind, record).
pub struct Simulator {
    s: SimSettings,
    rng: ChaCha8Rng,
    fleet: Vec<Vehicle>,
    unknown: Vec<(String, String)>,
    made: u64,
    fines: u64,
    step: TimeDelta,
    recent: Vec<Record>,
    queued: Option<(Kind, Record)>,
    pub counts: BTreeMap<Kind, u64>,
}

impl Simulator {
    pub fn new(s: SimSettings, fleet: &Fleet) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
        let vehicles: Vec<Vehicle> = fleet
            .vehicles
            .iter()
            .enumerate()
            .map(|(i, id)| Vehicle {
                id: id.clone(),
                driver: fleet.drivers[i % fleet.drivers.len().max(1)].clone(),
                speed: 0.0,
                target: 0.0,
                lat: 45.0 + rng.random_range(-0.5..0.5),
                lon: 9.0 + rng.random_range(-0.5..0.5),
                heading: rng.random_range(0.0..std::f64::consts::TAU),
                fuel: rng.random_range(20.0..100.0),
                leg: 0,
            })
            .collect();
        let unknown = (1..=5)
            .map(|i| (format!("V9{i:03}"), format!("D9{i:03}")))
            .collect();
        let per_event_us = s.report_every.as_micros() as i64 / vehicles.len().max(1) as i64;
        Self {
            step: TimeDelta::microseconds(per_event_us.max(1)),
            rng,
            fleet: vehicles,
            unknown,
            made: 0,
            fines: 0,
            recent: Vec::new(),
            queued: None,
            counts: BTreeMap::new(),
            s,
        }
    }

    /// Event time of the n-th telemetry message (`events` gives the time
    /// right after the last one: where a follow-up run may start).
    pub fn time_of(&self, n: u64) -> DateTime<Utc> {
        self.s.start + self.step * n as i32
    }

    fn telemetry(&mut self, n: u64) -> (serde_json::Value, String) {
        let i = (n % self.fleet.len().max(1) as u64) as usize;
        let t = self.time_of(n);
        let unknown = self.rng.random_bool(self.s.unknown_share.clamp(0.0, 1.0));
        let rng = &mut self.rng;
        let v = &mut self.fleet[i];
        if v.leg == 0 {
            // A new leg: stop, city, road or motorway.
            let (target, steps) = match rng.random_range(0..10) {
                0 => (0.0, rng.random_range(3..20)),
                1..=4 => (rng.random_range(30.0..55.0), rng.random_range(10..60)),
                5..=7 => (rng.random_range(70.0..100.0), rng.random_range(20..80)),
                _ => (rng.random_range(110.0..145.0), rng.random_range(30..120)),
            };
            v.target = target;
            v.leg = steps;
        }
        v.leg -= 1;
        let accel = (v.target - v.speed).clamp(-15.0, 12.0);
        v.speed = (v.speed + accel + rng.random_range(-3.0..3.0)).clamp(0.0, 200.0);
        if v.target == 0.0 && v.speed < 5.0 {
            v.speed = 0.0;
        }
        let speed = (v.speed * 10.0).round() / 10.0;
        let expected = if speed == 0.0 {
            0
        } else {
            ((speed / 30.0).round() as i64).clamp(1, 7)
        };
        let gear = match rng.random_range(0..100) {
            0..=5 if expected > 0 => {
                (expected + if rng.random_bool(0.5) { 1 } else { -1 }).clamp(1, 7)
            }
            _ => expected,
        };
        let rpm = if gear == 0 {
            rng.random_range(700..950)
        } else if rng.random_range(0..100) < 2 {
            rng.random_range(6100..7800)
        } else {
            let within = speed - (gear as f64 - 1.0) * 30.0;
            (1000.0 + within.max(0.0) * 70.0 + rng.random_range(-150.0..150.0)).clamp(800.0, 5900.0)
                as i64
        };
        let km = speed * self.s.report_every.as_secs_f64() / 3600.0;
        v.heading += rng.random_range(-0.2..0.2);
        v.lat = (v.lat + km / 111.0 * v.heading.cos()).clamp(-89.9, 89.9);
        v.lon = (v.lon + km / 78.0 * v.heading.sin()).clamp(-179.9, 179.9);
        v.fuel = (v.fuel - km * 0.08).max(0.0);
        if v.fuel < 5.0 {
            v.fuel = 100.0;
        }
        let (vehicle, driver) = if unknown {
            let k = rng.random_range(0..self.unknown.len());
            self.unknown[k].clone()
        } else {
            (v.id.clone(), v.driver.clone())
        };
        let fuel = if rng.random_range(0..50) == 0 {
            serde_json::Value::Null
        } else {
            json!((v.fuel * 10.0).round() / 10.0)
        };
        let event_id = uuid::Builder::from_random_bytes(rng.random()).into_uuid();
        let obj = json!({
            "event_id": event_id.to_string(),
            "vehicle_id": vehicle,
            "driver_id": driver,
            "event_time": t.to_rfc3339_opts(SecondsFormat::Millis, true),
            "lat": (v.lat * 1e6).round() / 1e6,
            "lon": (v.lon * 1e6).round() / 1e6,
            "speed_kmh": speed,
            "rpm": rpm,
            "gear": gear,
            "fuel_pct": fuel,
        });
        (obj, vehicle)
    }

    fn fine(&mut self, n: u64, vehicle: &str, speed: f64) -> Record {
        self.fines += 1;
        let limits = [30.0, 50.0, 70.0, 90.0, 110.0, 130.0];
        let limit = limits
            .iter()
            .rev()
            .find(|l| **l < speed.max(31.0))
            .copied()
            .unwrap_or(30.0);
        let measured = ((speed + self.rng.random_range(1.0..25.0)) * 10.0).round() / 10.0;
        let over = (measured - limit).max(1.0);
        let amount = ((40.0 + over * 8.5) * 100.0).round() / 100.0;
        let at = self.time_of(n) + TimeDelta::milliseconds(self.rng.random_range(0..2000));
        let value = json!({
            "fine_id": format!("F{}-{:08}", self.s.seed, self.fines),
            "vehicle_id": vehicle,
            "camera_id": format!("CAM-{:03}", self.rng.random_range(1..120)),
            "issued_at": at.to_rfc3339_opts(SecondsFormat::Secs, true),
            "speed_kmh": measured,
            "limit_kmh": limit,
            "amount_eur": amount,
        });
        self.record_json(&self.s.fines_topic.clone(), vehicle, &value)
    }

    fn record_json(&self, topic: &str, key: &str, value: &serde_json::Value) -> Record {
        Record {
            topic: topic.to_string(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.to_string().into_bytes()),
        }
    }

    /// Turns a good telemetry object into a bad message of `kind`.
    fn spoil(&mut self, kind: Kind, mut obj: serde_json::Value, key: &str) -> Record {
        let topic = self.s.telemetry_topic.clone();
        let text = obj.to_string();
        let raw = |bytes: Vec<u8>| Record {
            topic: topic.clone(),
            partition: None,
            key: Some(key.as_bytes().to_vec()),
            value: Some(bytes),
        };
        const FIELDS: [&str; 9] = [
            "event_id",
            "vehicle_id",
            "driver_id",
            "event_time",
            "lat",
            "lon",
            "speed_kmh",
            "rpm",
            "gear",
        ];
        match kind {
            Kind::MalformedJson => {
                let cut = text.len() / 2;
                let variant = self.rng.random_range(0..9);
                raw(match variant {
                    0 => text.as_bytes()[..cut].to_vec(),
                    1 => text.replacen('}', ",}", 1).into_bytes(),
                    2 => text
                        .replacen("\"speed_kmh\":", "\"speed_kmh\":NaN,\"x\":", 1)
                        .into_bytes(),
                    3 => text.replace('"', "'").into_bytes(),
                    4 => [&b"\xef\xbb\xbf"[..], text.as_bytes()].concat(),
                    5 => text.replacen('{', "{\"gear\":1,", 1).into_bytes(),
                    6 => [text.as_bytes(), &b" {}"[..]].concat(),
                    7 => {
                        // Invalid UTF-8 inside a string.
                        let at = text.find("\"vehicle_id\":\"").map_or(0, |i| i + 14);
                        let mut b = text.into_bytes();
                        b.insert(at, 0xff);
                        b
                    }
                    _ => b"[1, 2, 3]".to_vec(),
                })
            }
            Kind::EmptyValue => {
                let ws = self.rng.random_bool(0.3);
                raw(if ws { b"   ".to_vec() } else { Vec::new() })
            }
            Kind::Tombstone => Record {
                topic,
                partition: None,
                key: Some(key.as_bytes().to_vec()),
                value: None,
            },
            Kind::Missing => {
                let f = FIELDS[self.rng.random_range(0..FIELDS.len())];
                match self.rng.random_range(0..3) {
                    0 => obj[f] = serde_json::Value::Null,
                    1 => {
                        if let Some(m) = obj.as_object_mut() {
                            m.remove(f);
                        }
                    }
                    _ => obj[f] = json!(" "),
                }
                raw(obj.to_string().into_bytes())
            }
            Kind::Type => {
                match self.rng.random_range(0..5) {
                    0 => obj["speed_kmh"] = json!(obj["speed_kmh"].to_string()),
                    1 => obj["gear"] = json!(2.5),
                    2 => obj["rpm"] = json!(true),
                    3 => obj["event_time"] = json!("2026-11-21 08:00:00Z"),
                    _ => obj["fuel_pct"] = json!("full"),
                }
                raw(obj.to_string().into_bytes())
            }
            Kind::Range => {
                match self.rng.random_range(0..5) {
                    0 => obj["lat"] = json!(91.5),
                    1 => obj["lon"] = json!(-181.0),
                    2 => obj["speed_kmh"] = json!(301.0),
                    3 => obj["rpm"] = json!(10_001),
                    _ => obj["gear"] = json!(8),
                }
                raw(obj.to_string().into_bytes())
            }
            Kind::FutureEventTime => {
                // Far beyond any ingestion time of this run.
                let t = self.s.start + TimeDelta::days(3650);
                obj["event_time"] = json!(t.to_rfc3339_opts(SecondsFormat::Millis, true));
                raw(obj.to_string().into_bytes())
            }
            Kind::Duplicate => match self.recent.last() {
                Some(r) => r.clone(),
                None => raw(text.into_bytes()),
            },
            Kind::Telemetry | Kind::Fine => raw(text.into_bytes()),
        }
    }
}

impl Iterator for Simulator {
    type Item = (Kind, Record);

    fn next(&mut self) -> Option<(Kind, Record)> {
        if let Some(q) = self.queued.take() {
            *self.counts.entry(q.0).or_default() += 1;
            return Some(q);
        }
        if self.made >= self.s.events {
            return None;
        }
        let n = self.made;
        self.made += 1;
        let (obj, key) = self.telemetry(n);
        let speed = obj["speed_kmh"].as_f64().unwrap_or(0.0);
        let bad = self.rng.random_bool(self.s.bad_share.clamp(0.0, 1.0));
        let (kind, record) = if bad {
            let kind = Kind::BAD[self.rng.random_range(0..Kind::BAD.len())];
            (kind, self.spoil(kind, obj, &key))
        } else {
            let r = self.record_json(&self.s.telemetry_topic.clone(), &key, &obj);
            self.recent.push(r.clone());
            if self.recent.len() > 64 {
                self.recent.remove(0);
            }
            (Kind::Telemetry, r)
        };
        if self.rng.random_bool(self.s.fines_per_event.clamp(0.0, 1.0)) {
            let fine = self.fine(n, &key, speed);
            self.queued = Some((Kind::Fine, fine));
        }
        *self.counts.entry(kind).or_default() += 1;
        Some((kind, record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(seed: u64) -> Simulator {
        Simulator::new(
            SimSettings {
                seed,
                events: 5_000,
                bad_share: 0.1,
                ..SimSettings::default()
            },
            &Fleet::synthetic(50, 40),
        )
    }

    #[test]
    fn same_seed_same_bytes() {
        let a: Vec<_> = sim(7).collect();
        let b: Vec<_> = sim(7).collect();
        let c: Vec<_> = sim(8).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn every_kind_appears_in_plausible_shares() {
        let mut s = sim(1);
        let all: Vec<_> = s.by_ref().collect();
        for kind in Kind::BAD {
            assert!(
                s.counts.get(&kind).copied().unwrap_or(0) > 10,
                "{kind:?}: {:?}",
                s.counts
            );
        }
        let fines = s.counts[&Kind::Fine];
        assert!(
            (50..=150).contains(&fines),
            "about one fine per fifty: {fines}"
        );
        let telemetry = all.iter().filter(|(k, _)| *k != Kind::Fine).count() as u64;
        assert_eq!(telemetry, 5_000);
        // Good telemetry: valid JSON, consistent gear most of the time.
        let good: Vec<serde_json::Value> = all
            .iter()
            .filter(|(k, _)| *k == Kind::Telemetry)
            .map(|(_, r)| serde_json::from_slice(r.value.as_deref().unwrap()).unwrap())
            .collect();
        let consistent = good
            .iter()
            .filter(|v| {
                let speed = v["speed_kmh"].as_f64().unwrap();
                let gear = v["gear"].as_i64().unwrap();
                let expected = if speed == 0.0 {
                    0
                } else {
                    ((speed / 30.0).round() as i64).clamp(1, 7)
                };
                gear == expected
            })
            .count();
        let share = consistent as f64 / good.len() as f64;
        assert!((0.85..0.99).contains(&share), "gear consistent in {share}");
        assert!(
            good.iter()
                .any(|v| v["speed_kmh"].as_f64().unwrap() > 120.0),
            "some speeding"
        );
        assert!(
            good.iter().any(|v| v["rpm"].as_i64().unwrap() > 6000),
            "some over-revving"
        );
    }
}
