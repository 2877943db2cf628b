//! Member events and member helpers: ids (a card id `M00012345`, an app
//! alias `APP-55012`), phone hashes, payment tokens, where a member shops,
//! registrations (with aliases), redemptions and erasures.

use rand::Rng;
use sha2::{Digest, Sha256};
use storepulse_core::{Channel, PaymentMethod};

use super::world::flags;
use super::{hex, mix, token_prefix, Generator, STAY};
use crate::wire::{Body, Record};

impl Generator {
    pub(super) fn primary_id(m: u32) -> String {
        format!("M{:08}", u64::from(m) + 1)
    }

    pub(super) fn alias_id(m: u32) -> String {
        format!("APP-{}", u64::from(m) + 50_001)
    }

    /// The id a member uses this time: the alias now and then, once registered.
    pub(super) fn member_id_for(&mut self, m: u32) -> String {
        if self.world.members[m as usize].has(flags::ALIAS_REGISTERED) && self.rng.gen_bool(0.3) {
            Self::alias_id(m)
        } else {
            Self::primary_id(m)
        }
    }

    pub(super) fn pick_member(&mut self) -> Option<u32> {
        for _ in 0..3 {
            let m = self.world.random_member(&mut self.rng)?;
            if self.world.members[m as usize].active() {
                return Some(m);
            }
        }
        None
    }

    pub(super) fn phone_hash(&self, m: u32) -> String {
        let phone = format!(
            "139{:08}",
            (u64::from(m) * 7919 + self.phone_offset) % 100_000_000
        );
        let digest = Sha256::digest(format!("storepulse-sim-salt:{phone}").as_bytes());
        hex(&digest)
    }

    pub(super) fn member_token(&self, m: u32, method: PaymentMethod) -> Option<String> {
        let (prefix, code) = token_prefix(method)?;
        let h = mix(self.cfg.seed ^ mix(u64::from(m) + 1) ^ code);
        Some(format!("{prefix}{:012x}", h & 0xffff_ffff_ffff))
    }

    pub(super) fn anonymous_token(&mut self, method: PaymentMethod) -> Option<String> {
        let (prefix, _) = token_prefix(method)?;
        Some(format!("{prefix}{:016x}", self.rng.gen::<u64>()))
    }

    pub(super) fn stay_store(&self, m: u32) -> Option<u16> {
        let member = &self.world.members[m as usize];
        (member.has(flags::SHOPPED)
            && self.clock.saturating_sub(member.last_time) < STAY + self.jitter)
            .then_some(member.last_store)
    }

    pub(super) fn member_store(&mut self, m: u32) -> u16 {
        let home = self.world.members[m as usize].home;
        let r: f64 = self.rng.gen();
        if r < 0.75 {
            home
        } else if r < 0.95 {
            self.world.neighbour_pos_store(home, &mut self.rng)
        } else {
            self.world.random_pos_store(&mut self.rng)
        }
    }

    pub(super) fn home_or_random(&mut self, member: Option<u32>) -> u16 {
        match member {
            Some(m) => self.world.members[m as usize].home,
            None => self.world.random_pos_store(&mut self.rng),
        }
    }

    /// After a sale of member `m` at `store`: points, and where they are.
    pub(super) fn member_bought(&mut self, m: u32, store: u16, total: u64) {
        let clock = self.clock;
        let member = &mut self.world.members[m as usize];
        member.points += (total / 100) as i64;
        member.last_time = clock;
        member.last_store = store;
        member.flags |= flags::SHOPPED;
    }

    pub(super) fn register(&mut self) -> Option<Record> {
        if self.world.members.is_empty() {
            return None;
        }
        let dc = self.world.dc;
        let (m, member_id, channel) = if !self.alias_queue.is_empty() && self.rng.gen_bool(0.15) {
            let m = self.alias_queue.pop_front()?;
            if !self.world.members[m as usize].active() {
                return None;
            }
            self.world.members[m as usize].flags |= flags::ALIAS_REGISTERED;
            (m, Self::alias_id(m), Channel::App)
        } else if self.register_cursor < self.world.members.len() {
            let m = self.register_cursor as u32;
            self.register_cursor += 1;
            let member = &mut self.world.members[m as usize];
            member.flags |= flags::REGISTERED;
            if member.has(flags::HAS_ALIAS) {
                self.alias_queue.push_back(m);
            }
            let channel = match self.rng.gen_range(0..100) {
                0..=59 => Channel::Pos,
                60..=84 => Channel::MiniProgram,
                _ => Channel::App,
            };
            (m, Self::primary_id(m), channel)
        } else {
            // Everyone is registered: someone registers again (a new phone
            // app install), with the same phone: a no-op for the pipeline.
            let m = self.pick_member()?;
            (m, Self::primary_id(m), Channel::MiniProgram)
        };
        let home = self.world.members[m as usize].home;
        let store = match (channel, dc) {
            (Channel::Pos, _) | (_, None) => home,
            (_, Some(d)) => d,
        };
        let phone_hash = self.phone_hash(m);
        let id = self.next_id();
        let at = self.event_time();
        let event_id = match channel {
            Channel::Pos => {
                let t = self.terminal();
                format!("pos-{}-t{t}-{}-{id}", self.store_token(store), self.tag)
            }
            Channel::MiniProgram => format!("mp-reg-{}-{id}", self.tag),
            _ => format!("app-reg-{}-{id}", self.tag),
        };
        Some(Record {
            event_id,
            occurred_at: at,
            store,
            channel,
            member_id: Some(member_id),
            body: Body::MemberRegister { phone_hash },
        })
    }

    pub(super) fn redeem(&mut self) -> Option<Record> {
        let mut found = None;
        for _ in 0..6 {
            let m = self.world.random_member(&mut self.rng)?;
            let member = &self.world.members[m as usize];
            if member.active() && member.points >= 100 {
                found = Some(m);
                break;
            }
        }
        let m = found?;
        let balance = self.world.members[m as usize].points;
        let points = 100 * self.rng.gen_range(1..=(balance / 100).min(50)) as u64;
        self.world.members[m as usize].points -= points as i64;
        let store = if self.rng.gen_bool(0.7) {
            self.world.members[m as usize].home
        } else {
            self.world.random_pos_store(&mut self.rng)
        };
        let member_id = self.member_id_for(m);
        let id = self.next_id();
        let at = self.event_time();
        let t = self.terminal();
        Some(Record {
            event_id: format!("pos-{}-t{t}-{}-{id}", self.store_token(store), self.tag),
            occurred_at: at,
            store,
            channel: Channel::Pos,
            member_id: Some(member_id),
            body: Body::PointsRedeem {
                points,
                reference: format!("RDM-{}-{id}", self.tag),
            },
        })
    }

    pub(super) fn erase(&mut self) -> Option<Record> {
        if self.register_cursor == 0 {
            return None;
        }
        let mut found = None;
        for _ in 0..5 {
            let m = self.rng.gen_range(0..self.register_cursor) as u32;
            let member = &self.world.members[m as usize];
            if member.has(flags::REGISTERED) && member.active() {
                found = Some(m);
                break;
            }
        }
        let m = found?;
        self.world.members[m as usize].flags |= flags::ERASED;
        let store = self.world.dc.unwrap_or(self.world.members[m as usize].home);
        let id = self.next_id();
        let at = self.event_time();
        Some(Record {
            event_id: format!("privacy-req-{}-{id}", self.tag),
            occurred_at: at,
            store,
            channel: Channel::Backoffice,
            member_id: Some(Self::primary_id(m)),
            body: Body::MemberErase,
        })
    }
}
