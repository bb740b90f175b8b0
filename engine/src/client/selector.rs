//! Which server the client tries next (SPEC §B2): the known servers and leader, the
//! [`ServerSelection`] over them, and the servers already tried in the current pass.
//!
//! A *pass* tries every acceptable server at most once. It starts over when a server
//! answers a session request (the cluster is reachable again) or after the back-off that
//! follows a failed pass. Within a pass the order is a shuffle drawn from the client's
//! seeded generator, so two clients spread over the servers while a run stays
//! reproducible.

use std::collections::BTreeSet;

use crate::client::strategies::ServerSelection;
use crate::prng::Prng;
use crate::types::ReplicaId;

/// The servers, the leader, and the current pass.
#[derive(Clone, Debug)]
pub struct ServerSelector {
    selection: ServerSelection,
    /// Sorted, without duplicates; never empty.
    servers: Vec<ReplicaId>,
    leader: Option<ReplicaId>,
    /// This pass's order: `servers` shuffled.
    order: Vec<ReplicaId>,
    tried: BTreeSet<ReplicaId>,
}

impl ServerSelector {
    /// A selector over `servers` (at least one).
    #[must_use]
    pub fn new(selection: ServerSelection, servers: &[ReplicaId], prng: &mut Prng) -> Self {
        let servers = sorted(servers);
        assert!(!servers.is_empty(), "a client needs at least one server");
        let mut selector = ServerSelector {
            selection,
            order: Vec::new(),
            servers,
            leader: None,
            tried: BTreeSet::new(),
        };
        selector.new_pass(prng);
        selector
    }

    /// The servers known now, sorted.
    #[must_use]
    pub fn servers(&self) -> &[ReplicaId] {
        &self.servers
    }

    /// The leader, if known.
    #[must_use]
    pub fn leader(&self) -> Option<ReplicaId> {
        self.leader
    }

    /// Takes in a response's view of the cluster. An empty member list keeps the servers
    /// known (a server that knows no members cannot be right about there being none).
    /// Returns whether the leader or the servers changed.
    pub fn update(
        &mut self,
        leader: Option<ReplicaId>,
        members: &[ReplicaId],
        prng: &mut Prng,
    ) -> bool {
        let members = sorted(members);
        let mut changed = false;
        if !members.is_empty() && members != self.servers {
            self.servers = members;
            self.order = self.servers.clone();
            shuffle(&mut self.order, prng);
            self.tried.retain(|server| self.servers.contains(server));
            changed = true;
        }
        if leader != self.leader {
            self.leader = leader;
            changed = true;
        }
        assert!(!self.servers.is_empty());
        assert_eq!(self.order.len(), self.servers.len());
        changed
    }

    /// Forgets the leader (it failed, or a request through it did).
    pub fn forget_leader(&mut self) {
        self.leader = None;
    }

    /// Starts a pass: a fresh shuffle, nothing tried.
    pub fn new_pass(&mut self, prng: &mut Prng) {
        self.order = self.servers.clone();
        shuffle(&mut self.order, prng);
        self.tried.clear();
        assert_eq!(self.order.len(), self.servers.len());
    }

    /// `server` answered a session request: the pass starts over from it, so that when it
    /// fails later every other server gets a turn before the client backs off.
    pub fn succeeded(&mut self, server: ReplicaId) {
        self.tried.clear();
        self.tried.insert(server);
    }

    /// The next server of this pass, marked tried; `None` when the pass is over.
    pub fn next_server(&mut self) -> Option<ReplicaId> {
        let pick = match self.selection {
            ServerSelection::Any => self.first_untried(|_| true),
            ServerSelection::Leader => match self.leader {
                Some(leader) if !self.tried.contains(&leader) => Some(leader),
                Some(_) => None,
                None => self.first_untried(|_| true),
            },
            ServerSelection::Followers => match self.leader {
                Some(leader) if self.servers.iter().any(|&server| server != leader) => {
                    self.first_untried(|server| server != leader)
                }
                Some(leader) if !self.tried.contains(&leader) => Some(leader),
                Some(_) => None,
                None => self.first_untried(|_| true),
            },
        };
        if let Some(server) = pick {
            let inserted = self.tried.insert(server);
            assert!(inserted, "a pass tries each server once");
        }
        pick
    }

    /// Whether `server` is one the selection wants now (after a change in the leader or the
    /// members, the client moves away from a server that is not).
    #[must_use]
    pub fn accepts(&self, server: ReplicaId) -> bool {
        let known = self.servers.contains(&server) || self.leader == Some(server);
        match (self.selection, self.leader) {
            (ServerSelection::Leader, Some(leader)) => server == leader,
            (ServerSelection::Followers, Some(leader))
                if self.servers.iter().any(|&other| other != leader) =>
            {
                known && server != leader
            }
            _ => known,
        }
    }

    /// Where to move from `current` when the selection no longer accepts it: a server of
    /// this pass not tried yet (so two servers naming each other the leader cannot make the
    /// client bounce between them). Marks it tried.
    pub fn switch_from(&mut self, current: ReplicaId) -> Option<ReplicaId> {
        if self.accepts(current) {
            return None;
        }
        let target = self.next_server();
        if let Some(target) = target {
            assert!(target != current);
        }
        target
    }

    fn first_untried(&self, acceptable: impl Fn(ReplicaId) -> bool) -> Option<ReplicaId> {
        self.order
            .iter()
            .copied()
            .find(|&server| acceptable(server) && !self.tried.contains(&server))
    }
}

fn sorted(servers: &[ReplicaId]) -> Vec<ReplicaId> {
    let mut servers = servers.to_vec();
    servers.sort_unstable();
    servers.dedup();
    servers
}

/// Fisher–Yates with the seeded generator.
fn shuffle(servers: &mut [ReplicaId], prng: &mut Prng) {
    for last in (1..servers.len()).rev() {
        let bound = u64::try_from(last + 1).expect("server lists are small");
        let pick = usize::try_from(prng.range(0, bound)).expect("below the list length");
        servers.swap(last, pick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[u64]) -> Vec<ReplicaId> {
        list.iter().copied().map(ReplicaId).collect()
    }

    fn pass(selector: &mut ServerSelector) -> Vec<u64> {
        std::iter::from_fn(|| selector.next_server())
            .map(|id| id.0)
            .collect()
    }

    #[test]
    fn any_tries_every_server_once_in_a_seeded_shuffle() {
        let mut prng = Prng::new(3);
        let mut selector =
            ServerSelector::new(ServerSelection::Any, &ids(&[1, 2, 3, 4, 5]), &mut prng);
        let first = pass(&mut selector);
        let mut sorted_first = first.clone();
        sorted_first.sort_unstable();
        assert_eq!(sorted_first, vec![1, 2, 3, 4, 5]);
        // The same seed gives the same order; passes are reshuffled.
        let mut again = ServerSelector::new(
            ServerSelection::Any,
            &ids(&[1, 2, 3, 4, 5]),
            &mut Prng::new(3),
        );
        assert_eq!(pass(&mut again), first);
        let mut orders = BTreeSet::new();
        for _ in 0..20 {
            selector.new_pass(&mut prng);
            orders.insert(pass(&mut selector));
        }
        assert!(orders.len() > 1, "passes are shuffled: {orders:?}");
    }

    #[test]
    fn leader_goes_only_to_the_leader_once_known() {
        let mut prng = Prng::new(1);
        let mut selector =
            ServerSelector::new(ServerSelection::Leader, &ids(&[1, 2, 3]), &mut prng);
        assert!(selector.update(Some(ReplicaId(2)), &ids(&[1, 2, 3]), &mut prng));
        assert_eq!(pass(&mut selector), vec![2]);
        assert!(selector.accepts(ReplicaId(2)));
        assert!(!selector.accepts(ReplicaId(1)));
        // Once the leader is forgotten, the rest of the pass goes to everyone else.
        selector.forget_leader();
        let mut rest = pass(&mut selector);
        rest.sort_unstable();
        assert_eq!(rest, vec![1, 3]);
    }

    #[test]
    fn followers_avoid_the_leader_unless_it_is_alone() {
        let mut prng = Prng::new(1);
        let mut selector =
            ServerSelector::new(ServerSelection::Followers, &ids(&[1, 2, 3]), &mut prng);
        selector.update(Some(ReplicaId(1)), &ids(&[1, 2, 3]), &mut prng);
        let mut followers = pass(&mut selector);
        followers.sort_unstable();
        assert_eq!(followers, vec![2, 3]);
        assert!(!selector.accepts(ReplicaId(1)));
        // A one-server cluster: the leader is the only choice.
        let mut single = ServerSelector::new(ServerSelection::Followers, &ids(&[7]), &mut prng);
        single.update(Some(ReplicaId(7)), &ids(&[7]), &mut prng);
        assert_eq!(pass(&mut single), vec![7]);
        assert!(single.accepts(ReplicaId(7)));
    }

    #[test]
    fn switching_never_returns_to_a_server_tried_in_the_pass() {
        let mut prng = Prng::new(1);
        let mut selector = ServerSelector::new(ServerSelection::Leader, &ids(&[1, 2]), &mut prng);
        let first = selector.next_server().expect("two servers");
        let other = ReplicaId(3 - first.0);
        // The first server names the other the leader: move there.
        selector.update(Some(other), &ids(&[1, 2]), &mut prng);
        assert_eq!(selector.switch_from(first), Some(other));
        // The other names the first: it was tried in this pass, so stay.
        selector.update(Some(first), &ids(&[1, 2]), &mut prng);
        assert_eq!(selector.switch_from(other), None);
        // After a success the pass starts over and the move is allowed again.
        selector.succeeded(other);
        assert_eq!(selector.switch_from(other), Some(first));
    }

    #[test]
    fn membership_updates_replace_the_servers_but_never_empty_them() {
        let mut prng = Prng::new(1);
        let mut selector = ServerSelector::new(ServerSelection::Any, &ids(&[1, 2]), &mut prng);
        assert!(selector.update(None, &ids(&[3, 2, 2]), &mut prng));
        assert_eq!(selector.servers(), &ids(&[2, 3])[..]);
        assert!(!selector.accepts(ReplicaId(1)));
        assert!(!selector.update(None, &[], &mut prng));
        assert_eq!(selector.servers(), &ids(&[2, 3])[..]);
    }
}
