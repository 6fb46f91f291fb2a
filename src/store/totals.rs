//! Counts since the monitor started, for `/metrics`.
//!
//! Prometheus computes rates and quantiles itself (`rate()`, `histogram_quantile()`), so
//! what it needs from us is monotonic counts per label set, never windows. A model's
//! requests are counted per route, method, version and status class: the labels teams
//! split dashboards by. Each label is already bounded by the store's caps (routes and
//! versions past them are `(other)`), and a model keeps at most [`MAX_SERIES`] label
//! sets: past that its new combinations share one set whose labels are all `(other)`
//! but the status class, so a scrape stays bounded whatever arrives.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;

use super::OTHER;
use super::view::{Histogram, SeriesTotals, Totals};

/// Label sets per model; the scrape size is this times (buckets + 3) at most.
pub const MAX_SERIES: usize = 256;

/// Default upper bounds of the duration buckets, in seconds: the usual HTTP bounds,
/// stretched to LLM answers that run for minutes.
pub const DEFAULT_BUCKETS_S: [f64; 17] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0,
];

/// The methods counted by name; any other is `(other)`.
pub const METHODS: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

/// Status classes, by `status / 100 - 1`; statuses outside 100..=599 count as 5xx.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Upper bounds of the duration buckets, in microseconds (counting without floating
/// point), ascending. Cheap to clone: the store and every view share one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buckets(Arc<[u64]>);

impl Default for Buckets {
    fn default() -> Self {
        Self::from_seconds(&DEFAULT_BUCKETS_S)
    }
}

impl Buckets {
    /// From bounds in seconds, in any order; duplicates and non-positive bounds dropped.
    pub fn from_seconds(bounds_s: &[f64]) -> Self {
        let mut us: Vec<u64> = bounds_s
            .iter()
            .filter(|s| **s > 0.0)
            .map(|s| (s * 1e6).round() as u64)
            .filter(|us| *us > 0)
            .collect();
        us.sort_unstable();
        us.dedup();
        Self(us.into())
    }

    /// The bounds in seconds, for the `le` labels.
    pub fn seconds(&self) -> Vec<f64> {
        self.0.iter().map(|&us| us as f64 / 1e6).collect()
    }

    /// An empty histogram on these bounds.
    fn histogram(&self) -> Histogram {
        Histogram {
            buckets: vec![0; self.0.len()],
            ..Histogram::default()
        }
    }

    /// Adds a duration to `h`, made by [`Buckets::histogram`]: its count, its sum, and
    /// the first bucket it fits under (one above every bound is only in the count, as
    /// `+Inf` counts it).
    #[inline]
    fn add(&self, h: &mut Histogram, us: u64) {
        h.count += 1;
        h.sum_us = h.sum_us.saturating_add(us);
        if let Some(i) = self.0.iter().position(|&b| us <= b) {
            h.buckets[i] += 1;
        }
    }
}

/// What one request is counted under: the indices its route and version have in the
/// model's capped names (stable while the name holds its place; see
/// [`ModelTotals::fold`]), its method and class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Labels {
    pub route: u32,
    /// [`Labels::NO_VERSION`] for events without one.
    pub version: u32,
    pub method: u8,
    pub class: u8,
}

impl Labels {
    pub const NO_VERSION: u32 = u32::MAX;
    /// Route, version or method index of the shared label set past [`MAX_SERIES`].
    const OTHER: u32 = u32::MAX - 1;

    pub fn new(route: usize, version: Option<usize>, method: &str, status: u16) -> Self {
        let index = |i: usize| u32::try_from(i).unwrap_or(Self::OTHER);
        Self {
            route: index(route),
            version: version.map_or(Self::NO_VERSION, index),
            method: method_index(method),
            class: match status / 100 {
                c @ 1..=5 => c as u8 - 1,
                _ => 4,
            },
        }
    }

    fn overflow(self) -> Self {
        Self {
            route: Self::OTHER,
            version: Self::OTHER,
            method: u8::MAX,
            class: self.class,
        }
    }
}

/// The index of `method` in [`METHODS`], `METHODS.len()` for any other.
#[inline]
fn method_index(method: &str) -> u8 {
    // The usual spellings without a loop; other cases of them the slow way.
    let i = match method {
        "POST" => 1,
        "GET" => 0,
        _ => METHODS
            .iter()
            .position(|m| m.eq_ignore_ascii_case(method))
            .unwrap_or(METHODS.len()),
    };
    i as u8
}

/// Slots of the direct-mapped cache in front of the label sets' map.
const CACHE: usize = 32;

#[derive(Debug)]
struct Series {
    labels: Labels,
    errors: u64,
    duration: Histogram,
}

/// One model's counts since start.
#[derive(Debug)]
pub struct ModelTotals {
    series: Vec<Series>,
    index: HashMap<Labels, usize, RandomState>,
    /// Recent label sets by a cheap mix of their fields: a batch's events spread over a
    /// few routes and classes, and hashing each one's labels costs more than counting it.
    cache: Box<[(Labels, u32); CACHE]>,
    ttfb: Option<Box<Histogram>>,
}

impl Default for ModelTotals {
    fn default() -> Self {
        // An empty slot must match no label set that [`Labels::new`] makes.
        let empty = Labels {
            route: u32::MAX,
            version: 0,
            method: u8::MAX,
            class: u8::MAX,
        };
        Self {
            series: Vec::new(),
            index: HashMap::default(),
            cache: Box::new([(empty, 0); CACHE]),
            ttfb: None,
        }
    }
}

impl ModelTotals {
    /// Counts one request, late ones included (a counter never goes back).
    #[inline]
    pub fn record(&mut self, buckets: &Buckets, labels: Labels, duration_us: u64, err: bool) {
        let i = self.series_of(buckets, labels);
        let s = &mut self.series[i];
        s.errors += u64::from(err);
        buckets.add(&mut s.duration, duration_us);
    }

    /// Counts one streamed answer's time to first byte.
    #[inline]
    pub fn record_ttfb(&mut self, buckets: &Buckets, ttfb_us: u64) {
        let h = self
            .ttfb
            .get_or_insert_with(|| Box::new(buckets.histogram()));
        buckets.add(h, ttfb_us);
    }

    #[inline]
    fn series_of(&mut self, buckets: &Buckets, labels: Labels) -> usize {
        let slot = (labels.route as usize)
            .wrapping_mul(5)
            .wrapping_add(labels.version as usize)
            .wrapping_add(usize::from(labels.method) * 3)
            .wrapping_add(usize::from(labels.class) * 11)
            % CACHE;
        let (cached, i) = self.cache[slot];
        if cached == labels {
            return i as usize;
        }
        let asked = labels;
        let labels = if self.index.contains_key(&labels) || self.series.len() < MAX_SERIES {
            labels
        } else {
            labels.overflow()
        };
        let next = self.series.len();
        let i = *self.index.entry(labels).or_insert(next);
        if i == next {
            self.series.push(Series {
                labels,
                errors: 0,
                duration: buckets.histogram(),
            });
        }
        // Past the cap, the labels asked for map to the shared set.
        self.cache[slot] = (asked, i as u32);
        i
    }

    /// A route or version index was given to a new name: `(taken, other)`. Its label
    /// sets' counts go on under `(other)`'s index, added to any set there with the same
    /// other labels, so every printed series stays monotonic and the new name's start
    /// from nothing.
    pub fn fold(&mut self, route: Option<(usize, usize)>, version: Option<(usize, usize)>) {
        let moved = |i: u32, to: Option<(usize, usize)>| match to {
            Some((taken, other)) if i as usize == taken && i != Labels::NO_VERSION => {
                u32::try_from(other).unwrap_or(Labels::OTHER)
            }
            _ => i,
        };
        let series = std::mem::take(&mut self.series);
        self.index.clear();
        for mut s in series {
            s.labels.route = moved(s.labels.route, route);
            s.labels.version = moved(s.labels.version, version);
            if let Some(&i) = self.index.get(&s.labels) {
                let kept = &mut self.series[i];
                kept.errors += s.errors;
                add_histogram(&mut kept.duration, &s.duration);
            } else {
                self.index.insert(s.labels, self.series.len());
                self.series.push(s);
            }
        }
        // The cache maps label sets to places that have just moved.
        let empty = Self::default().cache[0];
        self.cache.fill(empty);
    }

    /// The counts with their labels' names: `route` and `version` name an index.
    pub fn view<'a>(
        &self,
        route: impl Fn(usize) -> Option<&'a str>,
        version: impl Fn(usize) -> Option<&'a str>,
    ) -> Totals {
        let name = |i: u32, of: &dyn Fn(usize) -> Option<&'a str>| -> String {
            match i {
                Labels::NO_VERSION => String::new(),
                Labels::OTHER => OTHER.to_owned(),
                i => of(i as usize).unwrap_or(OTHER).to_owned(),
            }
        };
        let series = self
            .series
            .iter()
            .map(|s| SeriesTotals {
                route: name(s.labels.route, &route),
                version: name(s.labels.version, &version),
                method: METHODS
                    .get(usize::from(s.labels.method))
                    .copied()
                    .unwrap_or(OTHER),
                class: CLASSES[usize::from(s.labels.class)],
                errors: s.errors,
                duration: s.duration.clone(),
            })
            .collect();
        Totals {
            // Only the shared sets made past the cap can print as a set made before it.
            series: if self.series.len() > MAX_SERIES {
                merge_same_labels(series)
            } else {
                series
            },
            ttfb: self.ttfb.as_deref().cloned(),
        }
    }
}

/// One series per printed label set: a set made before the cap whose route, version and
/// method are all `(other)` prints as the shared one, and Prometheus would drop one of
/// two series with the same labels.
fn merge_same_labels(series: Vec<SeriesTotals>) -> Vec<SeriesTotals> {
    let mut out: Vec<SeriesTotals> = Vec::with_capacity(series.len());
    let mut at: HashMap<(String, &str, String, &str), usize, RandomState> = HashMap::default();
    for s in series {
        let key = (s.route.clone(), s.method, s.version.clone(), s.class);
        if let Some(&i) = at.get(&key) {
            let kept = &mut out[i];
            kept.errors += s.errors;
            add_histogram(&mut kept.duration, &s.duration);
        } else {
            at.insert(key, out.len());
            out.push(s);
        }
    }
    out
}

fn add_histogram(h: &mut Histogram, add: &Histogram) {
    h.count += add.count;
    h.sum_us = h.sum_us.saturating_add(add.sum_us);
    for (b, n) in h.buckets.iter_mut().zip(&add.buckets) {
        *b += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(i: usize) -> Option<&'static str> {
        ["/predict", "/health"].get(i).copied()
    }

    #[test]
    fn requests_are_counted_per_label_set_into_cumulative_ready_buckets() {
        let b = Buckets::from_seconds(&[0.1, 0.01, 1.0, 0.01]);
        assert_eq!(b.seconds(), vec![0.01, 0.1, 1.0], "sorted, deduplicated");
        let mut t = ModelTotals::default();
        let predict = Labels::new(0, Some(1), "post", 200);
        t.record(&b, predict, 5_000, false);
        t.record(&b, predict, 50_000, false);
        t.record(&b, predict, 5_000_000, false);
        t.record(&b, Labels::new(0, Some(1), "POST", 503), 20_000, true);
        t.record(&b, Labels::new(1, None, "GET", 200), 1_000, false);
        let v = t.view(names, names);
        assert_eq!(v.series.len(), 3);
        let ok = &v.series[0];
        assert_eq!(
            (ok.route.as_str(), ok.method, ok.version.as_str(), ok.class),
            ("/predict", "POST", "/health", "2xx")
        );
        assert_eq!(ok.duration.count, 3);
        // The 5-s request is above every bound: only in the count (+Inf).
        assert_eq!(ok.duration.buckets, vec![1, 1, 0]);
        assert_eq!(ok.duration.sum_us, 5_055_000);
        assert_eq!((v.series[1].class, v.series[1].errors), ("5xx", 1));
        assert_eq!(v.series[2].version, "", "no version: an empty label");
    }

    #[test]
    fn label_sets_past_the_cap_share_one_per_class() {
        let b = Buckets::default();
        let mut t = ModelTotals::default();
        for route in 0..MAX_SERIES + 10 {
            t.record(&b, Labels::new(route, None, "GET", 200), 1_000, false);
            t.record(&b, Labels::new(route, None, "GET", 500), 1_000, true);
        }
        // Each route its own name, as the store's capped names are.
        let routes: Vec<String> = (0..MAX_SERIES + 10).map(|i| format!("/r{i}")).collect();
        let v = t.view(|i| routes.get(i).map(String::as_str), |_| None);
        assert_eq!(v.series.len(), MAX_SERIES + 2);
        let other: Vec<_> = v.series.iter().filter(|s| s.route == OTHER).collect();
        assert_eq!(other.len(), 2, "one shared set per class");
        let counted: u64 = v.series.iter().map(|s| s.duration.count).sum();
        assert_eq!(counted, 2 * (MAX_SERIES as u64 + 10), "nothing lost");
        assert_eq!(other[0].method, OTHER);
    }

    #[test]
    fn a_set_made_before_the_cap_that_prints_as_the_shared_one_is_one_series() {
        let b = Buckets::default();
        let mut t = ModelTotals::default();
        // Index 0 names no route or version: both print as (other), as the store's caps
        // make them; an unlisted method prints as (other) too.
        t.record(&b, Labels::new(0, Some(0), "PROPFIND", 200), 1_000, false);
        for route in 1..MAX_SERIES {
            t.record(&b, Labels::new(route, None, "GET", 200), 1_000, false);
        }
        // Past the cap: the shared set.
        t.record(&b, Labels::new(9_999, None, "GET", 200), 2_000, true);
        let names = |i: usize| (i > 0).then_some("/r");
        let v = t.view(names, |_| None);
        let other: Vec<_> = v
            .series
            .iter()
            .filter(|s| (s.route.as_str(), s.method, s.version.as_str()) == (OTHER, OTHER, OTHER))
            .collect();
        assert_eq!(other.len(), 1, "two series with the same labels");
        assert_eq!(other[0].duration.count, 2, "both sets' requests");
        assert_eq!(other[0].errors, 1);
        assert_eq!(other[0].duration.sum_us, 3_000);
        let counted: u64 = v.series.iter().map(|s| s.duration.count).sum();
        assert_eq!(counted, MAX_SERIES as u64 + 1, "nothing lost");
    }
}
