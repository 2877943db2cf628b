//! Members across Kafka partitions: one [`MemberProcessor`] per partition of
//! `<p>.events.by-member`, and the records that keep a person in one place.
//!
//! **Routing.** Member events are keyed by their raw `member_id`, so every
//! event of an id, its registrations included, reaches the id's own
//! partition `h(id)` first (`h` is the producer's partitioner). That
//! partition is the arbiter of the id: the first phone it registers with
//! stands, exactly as in the single processor.
//!
//! **A person lives at its phone's partition** `h(phone_hash)`. An id whose
//! registration names a phone homed elsewhere is *handed over*: its own
//! partition takes the id's history and ledger out of its state (they were
//! built under the raw key while the link was unknown) and sends a
//! [`Control::Handover`] with them and the registration to the phone's
//! partition, which merges them exactly as the single processor merges a
//! late link; it remembers "id -> phone's partition" and forwards every later
//! event of the id there. The handover is produced before any forwarded
//! event by the same producer to the same partition, so it arrives first.
//! An erasure at the person's partition sends [`Control::Forget`] to each
//! alias's own partition, which drops the redirect and marks the id erased.
//!
//! **Same result as one processor.** Every event is applied exactly once, at
//! the person's partition, and merging is commutative, so once every record
//! is delivered and the partitions' clocks agree, the union of the
//! partitions equals a single processor over all events (the property test
//! below checks it with shuffled input and random interleavings).
//! **Fraud.** A partition may run a [`FraudProcessor`] with the
//! member-keyed rules ([`MemberPartition::with_fraud`]), fed exactly as the
//! embedded driver feeds it (canonical id, relink after a registration,
//! forget on erasure: [`FraudProcessor::apply_with_members`]). A handover
//! carries the id's fraud windows too; the phone's partition puts them
//! under the id and re-links the person, so the alert a late link completes
//! is raised there. Alerts come out of [`MemberPartition::drain_fraud`].
//!
//! Control records carry deterministic ids (`handover:<registration id>`,
//! `forget:<erasure id>:<member id>`), so a record re-sent after a crash is a
//! duplicate at its receiver.

use serde::{Deserialize, Serialize};
use storepulse_core::{Event, EventBody, Id, Rejection, Ts};

use super::{phone_bytes, MemberOutput, MemberProcessor, MemberState, PersonParts};
use crate::fraud::{FraudOutput, FraudProcessor, FraudState, MovedWindow};
use crate::processor::Outcome;

/// Maps a record key to a partition (Kafka's murmur2 in production).
pub type Partitioner = fn(&[u8], u32) -> u32;

/// A record between member partitions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per record read; boxed in `Routed`
pub enum Control {
    /// `member_id` registered with `phone` (hex) at `registered_at`; its
    /// history until then, if it had any.
    Handover {
        control_id: Id,
        member_id: Id,
        phone: String,
        #[serde(with = "storepulse_core::time::rfc3339")]
        registered_at: Ts,
        registration_id: Id,
        parts: Option<PersonParts>,
        /// The id's fraud windows (member-keyed rules), if any.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        fraud: Vec<MovedWindow>,
        /// The sender's event-time clock: at least every time in `parts`.
        #[serde(with = "storepulse_core::time::rfc3339")]
        clock: Ts,
        /// The registration's `store_id` and channel, for its mart row,
        /// which the phone's partition derives (empty from older senders).
        #[serde(default, skip_serializing_if = "String::is_empty")]
        store_id: String,
        #[serde(default, skip_serializing_if = "String::is_empty")]
        channel: String,
        /// Set when the id was erased at its own partition before this
        /// registration arrived there: the phone's person is erased as of
        /// then, instead of registering the id (no `parts` come along).
        /// Nanoseconds since the epoch, exact.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        erased_at: Option<Ts>,
    },
    /// The event-time clock of the stock stage, which sees every event
    /// (member events are only part of them): `T` is the pipeline's clock.
    Clock {
        #[serde(with = "storepulse_core::time::rfc3339")]
        at: Ts,
    },
    /// `member_id` was erased at its person's partition.
    Forget {
        control_id: Id,
        member_id: Id,
        #[serde(with = "storepulse_core::time::rfc3339")]
        erased_at: Ts,
    },
}

/// Where something must go besides this partition's outputs.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// The event being applied belongs to another partition's person:
    /// produce its raw bytes there unchanged.
    Forward { partition: u32 },
    /// A control record for another partition (key: the member id).
    Control {
        partition: u32,
        control: Box<Control>,
    },
}

/// An id registered with a phone whose person lives elsewhere (kept in
/// [`MemberState`], so it is checkpointed with the members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Redirect {
    phone: [u8; 32],
    home: u32,
}

/// The member processor of one partition.
#[derive(Debug)]
pub struct MemberPartition {
    pub members: MemberProcessor,
    /// The member-keyed fraud rules of this partition, if it runs them.
    fraud: Option<FraudProcessor>,
    /// Fraud outputs not yet drained.
    fraud_out: Vec<FraudOutput>,
    partition: u32,
    partitions: u32,
    partitioner: Partitioner,
}

impl MemberPartition {
    /// The processor of `partition` of `partitions`, around `members` (which
    /// must de-duplicate: do not use `without_dedup`).
    pub fn new(
        members: MemberProcessor,
        partition: u32,
        partitions: u32,
        partitioner: Partitioner,
    ) -> Self {
        Self {
            members,
            fraud: None,
            fraud_out: Vec::new(),
            partition,
            partitions: partitions.max(1),
            partitioner,
        }
    }

    /// Runs `fraud` (give it the member-keyed rules only) beside the
    /// members.
    #[must_use]
    pub fn with_fraud(mut self, fraud: FraudProcessor) -> Self {
        self.fraud = Some(fraud);
        self
    }

    /// The fraud processor, if this partition runs one.
    pub fn fraud(&self) -> Option<&FraudProcessor> {
        self.fraud.as_ref()
    }

    /// The fraud processor, to change its rules.
    pub fn fraud_mut(&mut self) -> Option<&mut FraudProcessor> {
        self.fraud.as_mut()
    }

    /// The fraud state to checkpoint, if this partition runs fraud rules.
    pub fn fraud_state(&self) -> Option<&FraudState> {
        self.fraud.as_ref().map(FraudProcessor::state)
    }

    /// Takes the fraud alerts raised and withdrawn since the last call.
    pub fn drain_fraud(&mut self) -> Vec<FraudOutput> {
        std::mem::take(&mut self.fraud_out)
    }

    /// Moves the event-time clock of the members and the fraud rules.
    pub fn tick(&mut self, at: Ts, out: &mut Vec<MemberOutput>) {
        self.members.tick(at, out);
        if let Some(f) = &mut self.fraud {
            f.advance(at);
        }
    }

    /// The state to checkpoint (redirects included).
    pub fn state(&self) -> &MemberState {
        self.members.state()
    }

    /// The partition of a key.
    pub fn partition_of(&self, key: &str) -> u32 {
        (self.partitioner)(key.as_bytes(), self.partitions)
    }

    /// Applies one event of this partition. `routed` gets what must be
    /// produced elsewhere.
    ///
    /// # Errors
    /// As [`MemberProcessor::admit`], plus a registration of a redirected id
    /// with another phone.
    pub fn apply(
        &mut self,
        event: &Event,
        out: &mut Vec<MemberOutput>,
        routed: &mut Vec<Routed>,
    ) -> Result<Outcome, Rejection> {
        let Some(id) = &event.member_id else {
            self.tick(event.occurred_at, out);
            return Ok(Outcome::Ignored);
        };
        let first_new = out.len();
        let registration = match &event.body {
            EventBody::MemberRegister(r) => phone_bytes(&r.phone_hash),
            _ => None,
        };
        if let (Some(r), Some(phone)) =
            (self.members.state.redirects.get(id.as_str()), registration)
        {
            if r.phone != phone {
                return Err(Rejection::semantic(
                    "phone_hash",
                    "member_id is already registered with a different phone_hash",
                    &event.event_id,
                ));
            }
        }
        if !self.members.admit(event, out)? {
            return Ok(Outcome::Duplicate);
        }
        if let Some(r) = self.members.state.redirects.get(id.as_str()) {
            routed.push(Routed::Forward { partition: r.home });
            return Ok(Outcome::Applied);
        }
        if let (Some(phone), EventBody::MemberRegister(reg)) = (registration, &event.body) {
            let home = self.partition_of(&reg.phone_hash);
            if home != self.partition {
                // An id erased here before its registration arrived: the
                // person it links to, at the phone's partition, goes too
                // (as with one processor, whatever the arrival order); only
                // the registration and the erasure time go there.
                let erased_at = self.members.id_erased_at(id, event.occurred_at);
                let (parts, fraud, store_id, channel) = if erased_at.is_some() {
                    (None, Vec::new(), String::new(), String::new())
                } else {
                    let parts = self.members.take_unregistered(id, &event.event_id, out);
                    let fraud = match &mut self.fraud {
                        Some(f) => {
                            f.advance(event.occurred_at);
                            f.take_member_windows(id)
                        }
                        None => Vec::new(),
                    };
                    self.members
                        .state
                        .redirects
                        .insert(id.clone(), Redirect { phone, home });
                    let store_id = self.members.stores().id(event.store).to_owned();
                    (parts, fraud, store_id, event.channel.as_str().to_owned())
                };
                routed.push(Routed::Control {
                    partition: home,
                    control: Box::new(Control::Handover {
                        control_id: format!("handover:{}", event.event_id).into(),
                        member_id: id.clone(),
                        phone: reg.phone_hash.to_string(),
                        registered_at: event.occurred_at,
                        registration_id: event.event_id.clone(),
                        parts,
                        fraud,
                        clock: self.members.clock(),
                        store_id,
                        channel,
                        erased_at,
                    }),
                });
                return Ok(if erased_at.is_some() {
                    Outcome::Ignored
                } else {
                    Outcome::Applied
                });
            }
        }
        let outcome = self.members.apply_admitted(event, out);
        if let Some(f) = &mut self.fraud {
            let produced = out.get(first_new..).unwrap_or_default();
            f.apply_with_members(Some(&self.members), event, produced, &mut self.fraud_out);
        }
        self.route_forgets(out, routed);
        Ok(outcome)
    }

    /// Applies a control record addressed to this partition. Returns
    /// whether it was applied: false for a duplicate, a moot one, and a
    /// handover whose registration did not register (its id or its phone
    /// erased: it erased instead, see [`MemberProcessor::register`]).
    pub fn apply_control(
        &mut self,
        control: Control,
        out: &mut Vec<MemberOutput>,
        routed: &mut Vec<Routed>,
    ) -> bool {
        match control {
            Control::Handover {
                control_id,
                member_id,
                phone,
                registered_at,
                registration_id,
                parts,
                fraud,
                clock,
                erased_at,
                ..
            } => {
                if !self.members.remember(&control_id, registered_at)
                    || self.members.is_erased(&member_id, registered_at)
                {
                    return false;
                }
                let Some(phone) = phone_bytes(&phone) else {
                    return false;
                };
                if let Some(erased_at) = erased_at {
                    // Erased at its own partition first: erase the person
                    // it links to (or mark the phone, none here yet).
                    self.members.forget(&member_id, erased_at);
                    let first_new = out.len();
                    self.members
                        .erase_phone(&phone, erased_at, &registration_id, out);
                    if let Some(f) = &mut self.fraud {
                        f.forget_erased(out.get(first_new..).unwrap_or_default());
                    }
                    self.route_forgets(out, routed);
                    return false;
                }
                // The moved history is as new as the sender's clock.
                self.tick(clock, out);
                if let Some(parts) = parts {
                    self.members.insert_parts(&member_id, parts);
                }
                let first_new = out.len();
                // False for a registration of an erased person's phone: the
                // id (and the history it brought) is erased here instead.
                let registered =
                    self.members
                        .register(&registration_id, registered_at, &member_id, phone, out);
                if let Some(f) = &mut self.fraud {
                    // As a late link embedded: the id's windows join its
                    // person's, grouped again under the canonical id.
                    f.absorb_member_windows(&member_id, fraud, &mut self.fraud_out);
                    f.relink_person(&self.members, &member_id, &mut self.fraud_out);
                    f.forget_erased(out.get(first_new..).unwrap_or_default());
                }
                self.route_forgets(out, routed);
                registered
            }
            Control::Clock { at } => {
                self.tick(at, out);
                true
            }
            Control::Forget {
                control_id,
                member_id,
                erased_at,
            } => {
                if !self.members.remember(&control_id, erased_at) {
                    return false;
                }
                self.members.state.redirects.remove(member_id.as_str());
                self.members.forget(&member_id, erased_at);
                if let Some(f) = &mut self.fraud {
                    f.forget_member(std::slice::from_ref(&member_id));
                }
                true
            }
        }
    }

    /// Sends `Forget` to the own partitions of an erased person's ids.
    fn route_forgets(&self, out: &[MemberOutput], routed: &mut Vec<Routed>) {
        for o in out {
            let MemberOutput::Erased(e) = o else { continue };
            for id in std::iter::once(&e.member_id).chain(e.aliases.iter()) {
                let partition = self.partition_of(id);
                if partition != self.partition {
                    routed.push(Routed::Control {
                        partition,
                        control: Box::new(Control::Forget {
                            control_id: format!("forget:{}:{id}", e.event_id).into(),
                            member_id: id.clone(),
                            erased_at: e.erased_at,
                        }),
                    });
                }
            }
        }
    }

    /// Number of redirected ids.
    pub fn redirects(&self) -> usize {
        self.members.state.redirects.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;
    use storepulse_core::time::HOUR;

    use super::super::tests::{build, op, shuffle, stores, D0};
    use super::super::{MemberConfig, MemberProcessor};
    use super::*;
    use crate::fraud::{FraudConfig, KeyKind, RuleSet};
    use crate::processor::Processor;

    /// The fraud processor of the tests: the member-keyed default rules,
    /// and a lateness that keeps every sale of a shuffled stream.
    fn fraud() -> FraudProcessor {
        let rules = RuleSet::defaults(&stores()).unwrap().only(KeyKind::Member);
        FraudProcessor::new(
            FraudConfig {
                allowed_lateness_minutes: 366 * 24 * 60,
            },
            rules,
            stores(),
        )
    }

    /// The alerts standing after `outputs` (raised and not withdrawn):
    /// alert id -> (event ids, total).
    fn standing(outputs: &[FraudOutput]) -> std::collections::BTreeMap<String, (Vec<Id>, u64)> {
        let mut alerts = std::collections::BTreeMap::new();
        for o in outputs {
            match o {
                FraudOutput::Raised(a) => {
                    alerts.insert(a.alert_id.clone(), (a.event_ids.clone(), a.total_cents));
                }
                FraudOutput::Withdrawn(w) => {
                    alerts.remove(&w.alert_id);
                }
            }
        }
        alerts
    }

    fn partitioner(key: &[u8], n: u32) -> u32 {
        (xxhash_rust::xxh3::xxh3_64(key) % u64::from(n)) as u32
    }

    /// A message on the by-member topic.
    #[derive(Debug, Clone)]
    enum Msg {
        Event(Event),
        Control(Control),
    }

    /// What the partitions published for the read model: key, person.
    type Published = Vec<(String, Option<super::super::Person>, Ts)>;

    /// `n` member partitions, each with the member fraud rules.
    fn partitions(n: u32) -> Vec<MemberPartition> {
        let config = MemberConfig {
            ledger_exact_days: 366,
            allowed_lateness_hours: 24 * 366,
            ..MemberConfig::default()
        };
        (0..n)
            .map(|p| {
                MemberPartition::new(
                    MemberProcessor::new(config.clone(), stores())
                        .unwrap()
                        .tracking_changes(),
                    p,
                    n,
                    partitioner,
                )
                .with_fraud(fraud())
            })
            .collect()
    }

    /// Runs `events` through `n` partitions (each with the member fraud
    /// rules), delivering queued messages in an order driven by `choices`;
    /// returns the partitions, what they published and their fraud
    /// outputs, in order.
    fn run_partitioned(
        events: &[Event],
        n: u32,
        choices: &[u8],
    ) -> (
        Vec<MemberPartition>,
        Published,
        Vec<FraudOutput>,
        Vec<MemberOutput>,
    ) {
        let mut parts = partitions(n);
        let mut fraud_outputs = Vec::new();
        // One FIFO queue per (producer, partition): Kafka keeps a producer's
        // order within a partition, nothing else. Producer n is "ingest".
        let mut queues: Vec<VecDeque<Msg>> = vec![VecDeque::new(); ((n + 1) * n) as usize];
        for e in events {
            let to = partitioner(e.member_id.as_deref().unwrap_or("").as_bytes(), n);
            queues[(n * n + to) as usize].push_back(Msg::Event(e.clone()));
        }
        let mut out = Vec::new();
        let mut routed = Vec::new();
        let mut published = Vec::new();
        let mut step = 0usize;
        loop {
            let ready: Vec<usize> = (0..queues.len())
                .filter(|&q| !queues[q].is_empty())
                .collect();
            if ready.is_empty() {
                break;
            }
            let pick = ready[usize::from(
                choices
                    .get(step % choices.len().max(1))
                    .copied()
                    .unwrap_or(0),
            ) % ready.len()];
            step += 1;
            let to = (pick as u32) % n;
            let Some(msg) = queues[pick].pop_front() else {
                continue;
            };
            routed.clear();
            match &msg {
                Msg::Event(e) => {
                    let _ = parts[to as usize].apply(e, &mut out, &mut routed);
                }
                Msg::Control(c) => {
                    parts[to as usize].apply_control(c.clone(), &mut out, &mut routed);
                }
            }
            fraud_outputs.extend(parts[to as usize].drain_fraud());
            let clock = parts[to as usize].members.clock();
            parts[to as usize].members.drain_changes(|c| match c {
                super::super::PersonChange::Put(key, p) => {
                    published.push((key, Some(p.clone()), clock))
                }
                super::super::PersonChange::Retire(key) => published.push((key, None, clock)),
            });
            for r in routed.drain(..) {
                match r {
                    Routed::Forward { partition } => {
                        queues[(to * n + partition) as usize].push_back(msg.clone());
                    }
                    Routed::Control { partition, control } => {
                        queues[(to * n + partition) as usize].push_back(Msg::Control(*control));
                    }
                }
            }
        }
        let clock = parts.iter().map(|p| p.members.clock()).max().unwrap_or(0);
        for p in &mut parts {
            p.members.tick(clock, &mut out);
            p.members.drain_changes(|c| match c {
                super::super::PersonChange::Put(key, person) => {
                    published.push((key, Some(person.clone()), clock));
                }
                super::super::PersonChange::Retire(key) => published.push((key, None, clock)),
            });
        }
        (parts, published, fraud_outputs, out)
    }

    /// A read model fed with `published`, keys spread over 3 topic
    /// partitions read in an interleaving driven by `choices`.
    fn serve(published: Published, parts: &[MemberPartition], choices: &[u8]) -> MemberProcessor {
        let mut queues: Vec<VecDeque<_>> = vec![VecDeque::new(); 3];
        for record in published {
            queues[partitioner(record.0.as_bytes(), 3) as usize].push_back(record);
        }
        let config = MemberConfig {
            ledger_exact_days: 366,
            ..MemberConfig::default()
        };
        let mut served = MemberProcessor::new(config, stores())
            .unwrap()
            .without_dedup();
        let mut step = 0usize;
        loop {
            let ready: Vec<usize> = (0..3).filter(|&q| !queues[q].is_empty()).collect();
            if ready.is_empty() {
                break;
            }
            let c = usize::from(
                choices
                    .get(step % choices.len().max(1))
                    .copied()
                    .unwrap_or(0),
            );
            step += 1;
            if let Some((key, person, clock)) = queues[ready[c % ready.len()]].pop_front() {
                served.put_person(&key, person, clock);
            }
        }
        let tables = parts
            .iter()
            .enumerate()
            .map(|(i, p)| (i as u32, p.members.settlement_table().clone()))
            .collect();
        served.put_settlement(&tables);
        served
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Members split over 1-4 partitions, with shuffled input and random
        /// interleavings: together they equal one processor over all events.
        #[test]
        fn partitions_together_equal_one_processor(
            ops in prop::collection::vec((op(), 0u32..90 * 24), 1..80),
            // 90 days (members), or 1-4 hours: sales dense enough for the
            // member fraud rule to fire, late links included.
            span in prop_oneof![Just(90u32 * 24), Just(1u32), Just(4u32)],
            seed in any::<u64>(),
            n in 1u32..5,
            choices in prop::collection::vec(any::<u8>(), 1..64),
        ) {
            let mut events = build(&ops, span);
            events.sort_by_key(|e| e.occurred_at);
            let config = MemberConfig { ledger_exact_days: 366, ..MemberConfig::default() };
            let mut one = MemberProcessor::new(config, stores()).unwrap();
            let mut one_fraud = fraud();
            let mut out = Vec::new();
            let mut fraud_out = Vec::new();
            for e in &events {
                let first = out.len();
                if one.apply(e, &mut out).is_ok() {
                    one_fraud.apply_with_members(Some(&one), e, &out[first..], &mut fraud_out);
                }
            }
            let shuffled = shuffle(events, seed);
            let (parts, published, fraud_outputs, outputs) = run_partitioned(&shuffled, n, &choices);
            // Erasures (dated last) take whole persons whatever the order
            // their ids' events arrive in; only the alerts raised and the
            // points settled from an erased member's events depend on
            // whether those came before the erasure.
            let erasing = ops.iter().any(|(op, _)| op.is_erase());
            // The standing member fraud alerts are the same.
            if !erasing {
                prop_assert_eq!(standing(&fraud_outputs), standing(&fraud_out));
            }
            let mut together: Vec<_> = parts.iter().flat_map(|p| p.members.all_members()).collect();
            together.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            let mut alone: Vec<_> = one.all_members().collect();
            alone.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            prop_assert_eq!(&together, &alone);
            // The tag rows of every partition count each member's tags at
            // its favourite store, once.
            super::super::tests::assert_counted_at_favourite(together.into_iter(), outputs.iter());
            let mut owed = std::collections::BTreeMap::new();
            for p in &parts {
                for (k, v) in &p.members.state().settlement.owed {
                    *owed.entry(*k).or_insert(0) += v;
                }
            }
            owed.retain(|_, v| *v != 0);
            if !erasing {
                prop_assert_eq!(&owed, &one.state().settlement.owed);
            }
            // The read model of `serve`, fed from what the partitions
            // published, read in another interleaving, answers the same.
            let reversed: Vec<u8> = choices.iter().rev().copied().collect();
            let served = serve(published, &parts, &reversed);
            let mut from_topic: Vec<_> = served.all_members().collect();
            from_topic.sort_by(|a, b| a.member_id.cmp(&b.member_id));
            let mut alone = alone.clone();
            if erasing {
                // The read model's clock is that of the last person
                // published; an erasure of an id nobody registered moves
                // the partitions' clocks and publishes nothing.
                for m in alone.iter_mut().chain(from_topic.iter_mut()) {
                    m.as_of = None;
                }
            }
            prop_assert_eq!(&from_topic, &alone);
            if !erasing {
                prop_assert_eq!(&served.state().settlement.owed, &one.state().settlement.owed);
            }
        }
    }

    /// The partition of phone 1 and an `APP-<i>` id homed on another one.
    fn alias_off_home(n: u32) -> (u32, String) {
        let phone = super::super::tests::phone(1);
        let home = partitioner(phone.as_bytes(), n);
        let alias = (0..100)
            .map(|i| format!("APP-{i}"))
            .find(|id| partitioner(id.as_bytes(), n) != home)
            .expect("one of 100 ids is homed elsewhere");
        (home, alias)
    }

    #[test]
    fn a_late_link_completes_a_member_fraud_alert_at_the_phone_partition() {
        use storepulse_core::time::MINUTE;
        let n = 4;
        let (_, alias) = alias_off_home(n);
        let t = |m: i64| i64::from(D0) * 24 * HOUR + 10 * HOUR + m * MINUTE;
        // M1 registered with the phone; the alias buys in two more stores
        // within 30 minutes, and its registration arrives last.
        let events = vec![
            super::super::tests::register("r0", "M1", t(-60), 1),
            super::super::tests::sale("s1", "M1", t(0), "KM-001", 200_000),
            super::super::tests::sale("s2", &alias, t(10), "DL-001", 200_000),
            super::super::tests::sale("s3", &alias, t(20), "MZ-001", 200_000),
            super::super::tests::register("r1", &alias, t(-30), 1),
        ];
        let (parts, _, outputs, _) = run_partitioned(&events, n, &[0]);
        let alerts = standing(&outputs);
        assert_eq!(alerts.len(), 1, "{outputs:?}");
        let (ids, total) = alerts.values().next().unwrap();
        assert_eq!(ids.len(), 3);
        assert_eq!(*total, 600_000);
        // Raised at the phone's partition, under the person's canonical id.
        let raised: Vec<_> = outputs
            .iter()
            .filter_map(|o| match o {
                FraudOutput::Raised(a) => Some(a),
                FraudOutput::Withdrawn(_) => None,
            })
            .collect();
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].key.as_str(), "M1");
        assert!(
            parts[partitioner(alias.as_bytes(), n) as usize]
                .fraud()
                .unwrap()
                .window("multi_store_large_purchase", &alias)
                .is_none(),
            "the alias's windows moved with the handover"
        );
    }

    #[test]
    fn a_handover_moves_history_to_the_phone_partition_and_erasure_forgets_it() {
        // Find ids whose partitions differ from the phone's, for n = 4.
        let n = 4;
        let (home, alias) = alias_off_home(n);
        let t = |h: i64| i64::from(D0) * 24 * HOUR + h * HOUR;
        let events = vec![
            super::super::tests::sale("s1", &alias, t(1), "KM-001", 100_000),
            super::super::tests::register("r1", &alias, t(0), 1),
            super::super::tests::sale("s2", &alias, t(2), "DL-001", 50_000),
        ];
        let (parts, _, _, _) = run_partitioned(&events, n, &[0]);
        let own = &parts[partitioner(alias.as_bytes(), n) as usize];
        assert_eq!(own.redirects(), 1);
        assert!(own.members.member(&alias).is_none(), "moved away");
        let m = parts[home as usize].members.member(&alias).unwrap();
        assert_eq!((m.orders_90d, m.points_balance), (2, 1500));
        let mut with_erase = events.clone();
        with_erase.push(super::super::tests::erase("x1", &alias, t(3)));
        let (parts, _, _, _) = run_partitioned(&with_erase, n, &[0]);
        assert!(parts.iter().all(|p| p.members.member(&alias).is_none()));
        assert!(
            parts.iter().all(|p| p.redirects() == 0),
            "redirect forgotten"
        );
    }

    /// What a CI run of the mart on Kafka found: an alias registered
    /// before the erasure of its person, whose handover reaches the
    /// phone's partition after the erasure, came back as a new member.
    #[test]
    fn an_alias_handover_arriving_after_the_erasure_erases_the_alias_too() {
        let n = 4;
        let (home, alias) = alias_off_home(n);
        let own = partitioner(alias.as_bytes(), n) as usize;
        let primary = (0..100)
            .map(|i| format!("M{i}"))
            .find(|id| partitioner(id.as_bytes(), n) == home)
            .expect("one of 100 ids is homed at the phone's partition");
        let t = |m: i64| i64::from(D0) * 24 * HOUR + 10 * HOUR + m * storepulse_core::time::MINUTE;
        let mut parts = partitions(n);
        let (mut out, mut routed) = (Vec::new(), Vec::new());
        let home = home as usize;
        parts[home]
            .apply(
                &super::super::tests::register("r0", &primary, t(0), 1),
                &mut out,
                &mut routed,
            )
            .unwrap();
        parts[own]
            .apply(
                &super::super::tests::sale("s1", &alias, t(1), "KM-001", 50_000),
                &mut out,
                &mut routed,
            )
            .unwrap();
        parts[own]
            .apply(
                &super::super::tests::register("r1", &alias, t(2), 1),
                &mut out,
                &mut routed,
            )
            .unwrap();
        let Some(Routed::Control { partition, control }) = routed.pop() else {
            panic!("a handover: {routed:?}");
        };
        assert_eq!(partition as usize, home);
        assert!(matches!(*control, Control::Handover { .. }));
        // The erasure reaches the phone's partition first.
        parts[home]
            .apply(
                &super::super::tests::erase("x1", &primary, t(3)),
                &mut out,
                &mut routed,
            )
            .unwrap();
        assert!(parts[home].members.member(&primary).is_none());
        out.clear();
        assert!(
            !parts[home].apply_control(*control, &mut out, &mut routed),
            "the handover does not register"
        );
        assert!(parts.iter().all(|p| p.members.member(&alias).is_none()));
        assert!(
            out.iter()
                .any(|o| matches!(o, MemberOutput::Erased(e) if e.member_id == alias)),
            "the alias (and the history it brought) is erased, and named: {out:?}"
        );
        // Its own partition forgets the redirect and the id.
        let forget = routed
            .iter()
            .find_map(|r| match r {
                Routed::Control { partition, control } if *partition as usize == own => {
                    Some((**control).clone())
                }
                _ => None,
            })
            .expect("a forget to the alias's own partition");
        assert!(parts[own].apply_control(forget, &mut out, &mut routed));
        assert_eq!(parts[own].redirects(), 0);
        routed.clear();
        parts[own]
            .apply(
                &super::super::tests::sale("s2", &alias, t(2), "KM-001", 100),
                &mut out,
                &mut routed,
            )
            .unwrap();
        assert!(routed.is_empty() && parts[own].members.member(&alias).is_none());
    }
}
