//! The nemesis: while faults are on, it partitions the network (halves, isolated leader,
//! bridge, one-way), crashes and restarts servers, pauses them, changes the membership,
//! and jumps wall clocks.

use coracle_engine::{MemberType, MembershipChange, Role};

use crate::network::Network;
use crate::simulator::{Event, Simulator};

impl Simulator {
    /// One nemesis step, then the next is scheduled.
    pub(crate) fn on_nemesis(&mut self) -> Result<(), String> {
        if self.healing {
            return Ok(());
        }
        let interval = self.options.nemesis_interval_us;
        let next = self.prng.range(interval / 2, interval * 3 / 2 + 1);
        self.schedule(next, Event::Nemesis);
        match self.prng.range(0, 100) {
            0..=27 => self.nemesis_partition(),
            28..=39 => self.network.heal(),
            40..=69 => self.nemesis_crash(),
            70..=79 => self.nemesis_pause(),
            80..=91 => return self.nemesis_membership(),
            _ => self.nemesis_clock_jump(),
        }
        Ok(())
    }

    /// Membership churn: a change at the leader every so often while faults are on.
    pub(crate) fn on_membership(&mut self) -> Result<(), String> {
        if self.healing {
            return Ok(());
        }
        let interval = self.options.membership_interval_us;
        let next = self.prng.range(interval / 2, interval * 3 / 2 + 1);
        self.schedule(next, Event::Membership);
        self.nemesis_membership()
    }

    /// Leader churn: the leader crashes (and restarts soon) or is cut off, so that many
    /// short terms leave divergent uncommitted tails behind (the ground Figure 8 grows on).
    pub(crate) fn on_leader_churn(&mut self) -> Result<(), String> {
        if self.healing {
            return Ok(());
        }
        let interval = self.options.leader_churn_interval_us;
        let next = self.prng.range(interval / 2, interval * 3 / 2 + 1);
        self.schedule(next, Event::LeaderChurn);
        let Some(leader) = self.leader_position() else {
            return Ok(());
        };
        if self.prng.chance(1, 2) {
            self.node_crash(leader);
            let downtime = self
                .prng
                .range(1_000, 3 * self.options.election_timeout_ms * 1000);
            self.schedule(downtime, Event::Restart(leader));
        } else {
            self.network.heal();
            self.network.partition(&[leader], self.nodes.len(), false);
            self.stats.partitions_count += 1;
        }
        Ok(())
    }

    fn leader_position(&self) -> Option<usize> {
        self.nodes.iter().position(|node| {
            node.replica()
                .is_some_and(|replica| replica.role() == Role::Leader)
        })
    }

    fn nemesis_partition(&mut self) {
        let count = self.nodes.len();
        let mut order: Vec<usize> = (0..count).collect();
        for position in (1..count).rev() {
            let other = usize::try_from(self.prng.range(0, position as u64 + 1)).expect("small");
            order.swap(position, other);
        }
        self.network.heal();
        self.stats.partitions_count += 1;
        match self.prng.range(0, 4) {
            0 => {
                // Random halves.
                let side = &order[..count / 2];
                self.network.partition(side, count, false);
            }
            1 => {
                // The leader alone (or a random node when none leads).
                let isolated = self.leader_position().unwrap_or(order[0]);
                self.network.partition(&[isolated], count, false);
            }
            2 => bridge(&mut self.network, &order),
            _ => {
                // One-way: a node hears everyone, nobody hears it (or the reverse).
                let isolated = self.leader_position().unwrap_or(order[0]);
                self.network.partition(&[isolated], count, true);
            }
        }
    }

    fn nemesis_crash(&mut self) {
        let up: Vec<usize> = (0..self.nodes.len())
            .filter(|&position| self.nodes[position].is_up())
            .collect();
        if up.is_empty() {
            return;
        }
        let victim = if self.prng.chance(1, 2) {
            self.leader_position().unwrap_or(up[0])
        } else {
            up[usize::try_from(self.prng.range(0, up.len() as u64)).expect("small")]
        };
        self.node_crash(victim);
        let timeout_us = self.options.election_timeout_ms * 1000;
        // Some crashes are a supervisor restarting the process at once, which is when a
        // forgotten vote or acknowledgement does the most harm.
        let downtime = if self.prng.chance(1, 3) {
            self.prng.range(1_000, 10_000)
        } else {
            self.prng.range(timeout_us / 2, 10 * timeout_us)
        };
        self.schedule(downtime, Event::Restart(victim));
    }

    fn nemesis_pause(&mut self) {
        let count = self.nodes.len() as u64;
        let victim = usize::try_from(self.prng.range(0, count)).expect("small");
        let timeout_us = self.options.election_timeout_ms * 1000;
        let pause = self.prng.range(timeout_us, 5 * timeout_us);
        self.nodes[victim].paused_until_us = self.now_us + pause;
    }

    fn nemesis_clock_jump(&mut self) {
        let count = self.nodes.len() as u64;
        let victim = usize::try_from(self.prng.range(0, count)).expect("small");
        let jump = i64::try_from(self.prng.range(0, 20_000)).expect("small") - 10_000;
        self.nodes[victim].wall_offset_ms += jump;
    }

    /// Asks the leader for one membership change: join a spare, remove a member, or
    /// change a member's type (promote or demote).
    fn nemesis_membership(&mut self) -> Result<(), String> {
        let Some(leader) = self.leader_position() else {
            return Ok(());
        };
        let replica = self.nodes[leader].replica().expect("up");
        let configuration = replica.configuration().clone();
        let outsiders: Vec<usize> = (0..self.nodes.len())
            .filter(|&position| configuration.member(self.nodes[position].id).is_none())
            .collect();
        let types = [MemberType::Active, MemberType::Passive, MemberType::Reserve];
        let member_type = types[usize::try_from(self.prng.range(0, 3)).expect("small")];
        let change = if !outsiders.is_empty() && self.prng.chance(1, 2) {
            let joiner = outsiders
                [usize::try_from(self.prng.range(0, outsiders.len() as u64)).expect("small")];
            MembershipChange::Join {
                id: self.nodes[joiner].id,
                member_type,
            }
        } else {
            let members = &configuration.members;
            let member =
                &members[usize::try_from(self.prng.range(0, members.len() as u64)).expect("small")];
            // The leader itself may leave or be demoted too (rarely): it leads until the
            // change commits, then hands over (the runtime found a leader configuring
            // itself after demoting itself; this path was never simulated before).
            if member.id == self.nodes[leader].id && !self.prng.chance(1, 4) {
                return Ok(());
            }
            let voters = configuration.voters_count();
            let keeps_voters = member.member_type != MemberType::Active || voters > 3;
            if self.prng.chance(1, 3) && keeps_voters {
                MembershipChange::Leave { id: member.id }
            } else if member_type != member.member_type
                && (member.member_type != MemberType::Active || voters > 3)
            {
                MembershipChange::Reconfigure {
                    id: member.id,
                    member_type,
                    status: member.status,
                    configuration_index: configuration.index,
                    configuration_term: configuration.term,
                }
            } else {
                return Ok(());
            }
        };
        let mut accepted = false;
        self.with_replica(leader, |replica, actions| {
            // Refusals (a change in flight, the no-op not committed) are expected here.
            accepted = replica.propose_membership(change, actions).is_ok();
        })?;
        if accepted {
            self.stats.membership_changes_count += 1;
        }
        Ok(())
    }
}

/// A bridge: two sides that cannot talk to each other, and the first node in `order`,
/// which talks to both.
fn bridge(network: &mut Network, order: &[usize]) {
    if order.len() < 3 {
        return;
    }
    let sides = &order[1..];
    let (left, right) = sides.split_at(sides.len() / 2);
    for &a in left {
        for &b in right {
            network.block(a, b);
            network.block(b, a);
        }
    }
}
