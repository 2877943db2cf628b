//! The risk team's review queue: every fraud alert (and points overdraft,
//! when its rule is on) with its status, and the decisions taken on them.
//!
//! Alerts come from the processors and are part of the checkpoint (a
//! restart replays the tail and raises the same ids again, which the queue
//! keeps once). Decisions come from people through the API: they are
//! written to the [`DecisionLog`](crate::decisions::DecisionLog) (fsynced)
//! before the API answers, and loaded again at start, so they survive
//! restarts without being in the checkpoint.
//!
//! Status: `open` until someone decides (`confirmed_fraud` or
//! `false_alarm`), or `withdrawn` when a late sale regrouped the key's
//! sales so the alert no longer stands (its decision, if any, is kept).
//! Open alerts are never evicted; closed ones beyond the capacity are,
//! oldest first.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use storepulse_core::Ts;
use storepulse_processors::fraud::{AlertWithdrawn, FraudAlert};
use storepulse_processors::members::PointsOverdraftAlert;

/// Closed alerts kept by default (open ones are always kept).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// A decision on an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    ConfirmedFraud,
    FalseAlarm,
}

impl Verdict {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConfirmedFraud => "confirmed_fraud",
            Self::FalseAlarm => "false_alarm",
        }
    }
}

/// Who decided what, when and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub alert_id: String,
    pub decision: Verdict,
    #[serde(default)]
    pub comment: String,
    /// The API key's name.
    pub decided_by: String,
    #[serde(with = "storepulse_core::time::rfc3339")]
    pub decided_at: Ts,
}

/// Where an alert stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Open,
    ConfirmedFraud,
    FalseAlarm,
    Withdrawn,
}

impl Status {
    /// Parses the wire name.
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "open" => Self::Open,
            "confirmed_fraud" => Self::ConfirmedFraud,
            "false_alarm" => Self::FalseAlarm,
            "withdrawn" => Self::Withdrawn,
            _ => return None,
        })
    }
}

/// An alert in the queue, as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewAlert {
    pub alert: FraudAlert,
    /// Points-overdraft alerts: the redemption's points and the balance
    /// after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
    /// When the alert was withdrawn, and by what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<AlertWithdrawn>,
    /// Order of arrival in the queue.
    pub seq: u64,
}

impl ReviewAlert {
    /// The overdraft for the review queue, when the fraud rules in force
    /// switch `points_overdraft` on (RULES.md: it is one of the four rules).
    /// One decision for the embedded driver, `replay` and Kafka's `serve`.
    pub fn overdraft_to_review(
        fraud: &storepulse_processors::fraud::FraudProcessor,
        a: &PointsOverdraftAlert,
    ) -> Option<FraudAlert> {
        fraud
            .rules()
            .points_overdraft_enabled()
            .then(|| Self::from_overdraft(a))
    }

    /// A points-overdraft alert in the common alert shape (its sales: the
    /// redemption; its total: none).
    pub fn from_overdraft(a: &PointsOverdraftAlert) -> FraudAlert {
        FraudAlert {
            alert_id: a.alert_id.clone(),
            rule: a.rule.clone(),
            key_kind: "member".into(),
            key: a.member_id.clone(),
            event_ids: vec![a.event_id.clone()],
            order_ids: Vec::new(),
            stores: vec![a.store_id.clone()],
            total_cents: 0,
            first_at: a.occurred_at,
            last_at: a.occurred_at,
        }
    }
}

/// An alert with its status, as served: the alert's fields, then these.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewView<'a> {
    #[serde(flatten)]
    pub alert: &'a FraudAlert,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balance_after: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<&'a AlertWithdrawn>,
    /// Order of arrival in the queue (the `before` cursor of paging).
    pub seq: u64,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'a Decision>,
}

/// The checkpointed part of the queue (alerts; decisions have their log).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewState {
    alerts: HashMap<String, ReviewAlert>,
    /// seq -> alert id, oldest first.
    order: BTreeMap<u64, String>,
    next_seq: u64,
}

/// The review queue.
#[derive(Debug, Clone)]
pub struct ReviewQueue {
    state: ReviewState,
    decisions: HashMap<String, Decision>,
    capacity: usize,
}

impl ReviewQueue {
    /// An empty queue keeping at most `capacity` closed alerts.
    pub fn new(capacity: usize) -> Self {
        Self::from_state(ReviewState::default(), capacity)
    }

    /// A queue resumed from a checkpoint.
    pub fn from_state(state: ReviewState, capacity: usize) -> Self {
        Self {
            state,
            decisions: HashMap::new(),
            capacity: capacity.max(1),
        }
    }

    /// The checkpointed part.
    pub fn state(&self) -> &ReviewState {
        &self.state
    }

    /// Adds a raised alert; `false` if the same alert is already in the
    /// queue as it is.
    ///
    /// An id already there is raised again when a later regrouping brought
    /// the same sales back together after a withdrawal (it stands again),
    /// or when a late alias link re-keyed it to the canonical member (its
    /// key is updated); its place in the queue and its decision stay.
    pub fn raise(&mut self, alert: FraudAlert, points: Option<(i64, i64)>) -> bool {
        if let Some(existing) = self.state.alerts.get_mut(&alert.alert_id) {
            let again = existing.withdrawn.take().is_some();
            let changed = existing.alert != alert;
            existing.alert = alert;
            return again || changed;
        }
        let seq = self.state.next_seq;
        self.state.next_seq += 1;
        self.state.order.insert(seq, alert.alert_id.clone());
        self.state.alerts.insert(
            alert.alert_id.clone(),
            ReviewAlert {
                alert,
                points: points.map(|p| p.0),
                balance_after: points.map(|p| p.1),
                withdrawn: None,
                seq,
            },
        );
        self.evict();
        true
    }

    /// Marks an alert withdrawn; `false` if unknown or already withdrawn.
    pub fn withdraw(&mut self, w: AlertWithdrawn) -> bool {
        match self.state.alerts.get_mut(&w.alert_id) {
            Some(a) if a.withdrawn.is_none() => {
                a.withdrawn = Some(w);
                self.evict();
                true
            }
            _ => false,
        }
    }

    /// Records a decision (from the log at start, or the API). A later
    /// decision on the same alert replaces the earlier one in the queue
    /// (the log keeps both).
    pub fn decide(&mut self, decision: Decision) {
        self.decisions.insert(decision.alert_id.clone(), decision);
        self.evict();
    }

    /// The status of an alert.
    pub fn status(&self, a: &ReviewAlert) -> Status {
        if a.withdrawn.is_some() {
            return Status::Withdrawn;
        }
        match self.decisions.get(&a.alert.alert_id).map(|d| d.decision) {
            Some(Verdict::ConfirmedFraud) => Status::ConfirmedFraud,
            Some(Verdict::FalseAlarm) => Status::FalseAlarm,
            None => Status::Open,
        }
    }

    /// One alert with its status.
    pub fn get(&self, alert_id: &str) -> Option<ReviewView<'_>> {
        self.state.alerts.get(alert_id).map(|a| self.view(a))
    }

    fn view<'a>(&'a self, a: &'a ReviewAlert) -> ReviewView<'a> {
        ReviewView {
            alert: &a.alert,
            points: a.points,
            balance_after: a.balance_after,
            withdrawn: a.withdrawn.as_ref(),
            seq: a.seq,
            status: self.status(a),
            decision: self.decisions.get(&a.alert.alert_id),
        }
    }

    /// Alerts, newest first, filtered by status and rule, at most `limit`,
    /// starting below `before` (a `seq`; paging).
    pub fn list(
        &self,
        status: Option<Status>,
        rule: Option<&str>,
        before: Option<u64>,
        limit: usize,
    ) -> Vec<ReviewView<'_>> {
        self.state
            .order
            .range(..before.unwrap_or(u64::MAX))
            .rev()
            .filter_map(|(_, id)| self.state.alerts.get(id))
            .filter(|a| rule.is_none_or(|r| a.alert.rule == r))
            .map(|a| self.view(a))
            .filter(|v| status.is_none_or(|s| v.status == s))
            .take(limit)
            .collect()
    }

    /// Counts by status.
    pub fn counts(&self) -> BTreeMap<&'static str, usize> {
        let mut c = BTreeMap::new();
        for a in self.state.alerts.values() {
            let name = match self.status(a) {
                Status::Open => "open",
                Status::ConfirmedFraud => "confirmed_fraud",
                Status::FalseAlarm => "false_alarm",
                Status::Withdrawn => "withdrawn",
            };
            *c.entry(name).or_default() += 1;
        }
        c
    }

    /// Alerts held.
    pub fn len(&self) -> usize {
        self.state.alerts.len()
    }

    /// Whether the queue is empty.
    pub fn is_empty(&self) -> bool {
        self.state.alerts.is_empty()
    }

    /// Drops the oldest closed alerts beyond the capacity.
    fn evict(&mut self) {
        if self.state.alerts.len() <= self.capacity {
            return;
        }
        let excess = self.state.alerts.len() - self.capacity;
        let closed: Vec<u64> = self
            .state
            .order
            .iter()
            .filter(|(_, id)| {
                self.state
                    .alerts
                    .get(*id)
                    .is_some_and(|a| self.status(a) != Status::Open)
            })
            .map(|(seq, _)| *seq)
            .take(excess)
            .collect();
        for seq in closed {
            if let Some(id) = self.state.order.remove(&seq) {
                self.state.alerts.remove(&id);
                self.decisions.remove(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str, rule: &str) -> FraudAlert {
        FraudAlert {
            alert_id: id.into(),
            rule: rule.into(),
            key_kind: "member".into(),
            key: "m1".into(),
            event_ids: vec!["e1".into()],
            order_ids: vec!["o1".into()],
            stores: vec!["KM-001".into()],
            total_cents: 1,
            first_at: 0,
            last_at: 0,
        }
    }

    fn decision(id: &str, verdict: Verdict) -> Decision {
        Decision {
            alert_id: id.into(),
            decision: verdict,
            comment: "checked the CCTV".into(),
            decided_by: "risk-1".into(),
            decided_at: 1,
        }
    }

    #[test]
    fn raised_alerts_are_open_until_decided_and_kept_once() {
        let mut q = ReviewQueue::new(10);
        assert!(q.raise(alert("a", "r1"), None));
        assert!(
            !q.raise(alert("a", "r1"), None),
            "a re-raised id is kept once"
        );
        assert!(q.raise(alert("b", "r2"), None));
        let open: Vec<_> = q
            .list(Some(Status::Open), None, None, 10)
            .iter()
            .map(|v| v.alert.alert_id.clone())
            .collect();
        assert_eq!(open, vec!["b", "a"], "newest first");
        q.decide(decision("a", Verdict::FalseAlarm));
        assert_eq!(q.get("a").map(|v| v.status), Some(Status::FalseAlarm));
        assert_eq!(q.list(Some(Status::Open), Some("r1"), None, 10).len(), 0);
        assert_eq!(q.list(None, Some("r2"), None, 10).len(), 1);
    }

    #[test]
    fn withdrawn_alerts_leave_the_open_list() {
        let mut q = ReviewQueue::new(10);
        q.raise(alert("a", "r1"), None);
        assert!(q.withdraw(AlertWithdrawn {
            alert_id: "a".into(),
            rule: "r1".into(),
            key: "m1".into(),
            superseded_by: vec!["b".into()],
            as_of: 5,
        }));
        assert_eq!(q.get("a").map(|v| v.status), Some(Status::Withdrawn));
        assert!(q.raise(alert("a", "r1"), None), "standing again");
        assert_eq!(q.get("a").map(|v| v.status), Some(Status::Open));
        let mut rekeyed = alert("a", "r1");
        rekeyed.key = "canonical".into();
        assert!(q.raise(rekeyed, None), "re-keyed by a late link");
        assert_eq!(
            q.get("a").map(|v| v.alert.key.to_string()),
            Some("canonical".into())
        );
    }

    #[test]
    fn only_closed_alerts_are_evicted() {
        let mut q = ReviewQueue::new(2);
        for id in ["a", "b", "c"] {
            q.raise(alert(id, "r"), None);
        }
        assert_eq!(q.len(), 3, "open alerts are never evicted");
        q.decide(decision("b", Verdict::ConfirmedFraud));
        assert_eq!(q.len(), 2);
        assert!(q.get("b").is_none());
        assert!(q.get("a").is_some() && q.get("c").is_some());
    }
}
