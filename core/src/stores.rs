//! Store master data (`stores.csv`: `store_id,name,region,city,lat,lon,franchisee`).
//!
//! Stores are few (tens to a few thousand) and fixed while the pipeline runs,
//! so each gets a dense [`StoreIdx`]: state keyed by store uses the index, and
//! the strings live here once. The file is loaded from a configurable path;
//! the project ships a copy in `data/stores.csv`.

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};

/// Dense index of a store in the [`StoreMaster`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize,
)]
pub struct StoreIdx(pub u16);

/// One store of the master data.
#[derive(Debug, Clone, Serialize)]
pub struct Store {
    pub store_id: String,
    pub name: String,
    /// The unit of a region manager's access.
    pub region: String,
    pub city: String,
    pub lat: f64,
    pub lon: f64,
    /// The unit of points settlement.
    pub franchisee: String,
}

/// All stores, indexed.
#[derive(Debug, Clone)]
pub struct StoreMaster {
    stores: Vec<Store>,
    by_id: HashMap<String, StoreIdx>,
}

#[derive(serde::Deserialize)]
struct CsvRow {
    store_id: String,
    name: String,
    region: String,
    city: String,
    lat: f64,
    lon: f64,
    franchisee: String,
}

impl StoreMaster {
    /// Loads `stores.csv` from `path`.
    ///
    /// # Errors
    /// The file cannot be read, a row is malformed, a store id repeats, a
    /// coordinate is out of range, or there are more than 65,535 stores.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::StoreMasterIo {
            path: path.to_owned(),
            source,
        })?;
        Self::from_csv(&text, path)
    }

    /// Parses the CSV text; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`StoreMaster::load`].
    pub fn from_csv(text: &str, origin: &Path) -> Result<Self> {
        let invalid = |line: u64, reason: String| Error::StoreMasterInvalid {
            path: origin.to_owned(),
            line,
            reason,
        };
        let mut reader = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut stores = Vec::new();
        let mut by_id = HashMap::new();
        for row in reader.deserialize::<CsvRow>() {
            let row = row.map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                invalid(line, e.to_string())
            })?;
            let line = stores.len() as u64 + 2;
            if row.store_id.is_empty() || row.store_id.chars().count() > 64 {
                return Err(invalid(line, "store_id must be 1-64 characters".into()));
            }
            if !(-90.0..=90.0).contains(&row.lat) || !(-180.0..=180.0).contains(&row.lon) {
                return Err(invalid(
                    line,
                    format!("coordinates {},{} out of range", row.lat, row.lon),
                ));
            }
            let idx = u16::try_from(stores.len())
                .map_err(|_| invalid(line, "more than 65535 stores".into()))?;
            if by_id.insert(row.store_id.clone(), StoreIdx(idx)).is_some() {
                return Err(invalid(
                    line,
                    format!("store_id {:?} appears twice", row.store_id),
                ));
            }
            stores.push(Store {
                store_id: row.store_id,
                name: row.name,
                region: row.region,
                city: row.city,
                lat: row.lat,
                lon: row.lon,
                franchisee: row.franchisee,
            });
        }
        if stores.is_empty() {
            return Err(invalid(1, "no stores".into()));
        }
        Ok(Self { stores, by_id })
    }

    /// The index of a store id, if it is a known store.
    pub fn lookup(&self, store_id: &str) -> Option<StoreIdx> {
        self.by_id.get(store_id).copied()
    }

    /// The store at an index handed out by this master.
    ///
    /// # Panics
    /// If `idx` did not come from this master (a programming error).
    pub fn get(&self, idx: StoreIdx) -> &Store {
        &self.stores[usize::from(idx.0)]
    }

    /// The store id string at an index.
    pub fn id(&self, idx: StoreIdx) -> &str {
        &self.get(idx).store_id
    }

    /// Number of stores.
    pub fn len(&self) -> usize {
        self.stores.len()
    }

    /// Whether there are no stores (never true for a loaded master).
    pub fn is_empty(&self) -> bool {
        self.stores.is_empty()
    }

    /// All stores with their indexes.
    pub fn iter(&self) -> impl Iterator<Item = (StoreIdx, &Store)> {
        self.stores
            .iter()
            .enumerate()
            .map(|(i, s)| (StoreIdx(i as u16), s))
    }

    /// Great-circle distance in kilometres between two stores.
    pub fn distance_km(&self, a: StoreIdx, b: StoreIdx) -> f64 {
        let (sa, sb) = (self.get(a), self.get(b));
        haversine_km(sa.lat, sa.lon, sb.lat, sb.lon)
    }
}

/// Great-circle (haversine) distance in kilometres on a 6371 km sphere.
pub fn haversine_km(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = (lat2 - lat1).to_radians();
    let dl = (lon2 - lon1).to_radians();
    let h = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "store_id,name,region,city,lat,lon,franchisee\n\
        KM-001,A,central,昆明,25.0189,102.6681,direct\n\
        DL-001,B,west,大理,25.6065,100.2676,dianxi-retail\n";

    #[test]
    fn loads_and_indexes() {
        let m = StoreMaster::from_csv(CSV, Path::new("t.csv")).unwrap();
        assert_eq!(m.len(), 2);
        let dl = m.lookup("DL-001").unwrap();
        assert_eq!(m.get(dl).region, "west");
        assert!(m.lookup("XX-9").is_none());
        let km = m.lookup("KM-001").unwrap();
        let d = m.distance_km(km, dl);
        assert!(
            (240.0..260.0).contains(&d),
            "Kunming-Dali is ~250 km, got {d}"
        );
    }

    #[test]
    fn duplicate_store_names_the_line() {
        let csv = format!("{CSV}KM-001,C,central,昆明,25.0,102.6,direct\n");
        let err = StoreMaster::from_csv(&csv, Path::new("t.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 4") && err.contains("twice"), "{err}");
    }

    #[test]
    fn shipped_master_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/stores.csv");
        let m = StoreMaster::load(&path).unwrap();
        assert_eq!(m.len(), 40);
        assert!(m.lookup("KM-DC").is_some());
    }
}
