//! The search's doubly linked list of call and return entries (Porcupine's `entry` list).

/// No node: the end of the list.
const NIL: usize = usize::MAX;
/// The sentinel node before the first entry.
const HEAD: usize = 0;

/// One entry of the list: an operation's call or its return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The call of the operation with this (partition-local) index.
    Call(usize),
    /// The return of the operation with this (partition-local) index.
    Return(usize),
}

#[derive(Clone, Copy, Debug)]
struct Node {
    prev: usize,
    next: usize,
}

/// The calls and returns of a partition's operations in time order, from which the search
/// lifts an operation's two entries when it linearizes the operation and puts them back
/// (in reverse order, "dancing links" style) when it backtracks.
///
/// Node 0 is the head sentinel; operation `i`'s call is node `2i + 1`, its return `2i + 2`.
pub(crate) struct EntryList {
    nodes: Vec<Node>,
}

impl EntryList {
    /// Builds the list for operations given as `(call_time, return_time)`, `None` being a
    /// return at +infinity. Entries are ordered by time; at equal times calls come first, so
    /// an operation called at the instant another returns counts as concurrent with it.
    pub(crate) fn new(times: &[(u64, Option<u64>)]) -> Self {
        // Sort key: (at infinity, time, return rather than call, operation).
        let mut order: Vec<(bool, u64, bool, usize)> = Vec::with_capacity(2 * times.len());
        for (op, &(call, ret)) in times.iter().enumerate() {
            if let Some(ret) = ret {
                assert!(
                    call <= ret,
                    "operation {op} returns at {ret}, before its call at {call}"
                );
            }
            order.push((false, call, false, op));
            order.push((ret.is_none(), ret.unwrap_or(0), true, op));
        }
        order.sort_unstable();
        let mut nodes = vec![
            Node {
                prev: NIL,
                next: NIL
            };
            2 * times.len() + 1
        ];
        let mut prev = HEAD;
        for &(_, _, is_return, op) in &order {
            let node = 2 * op + 1 + usize::from(is_return);
            nodes[prev].next = node;
            nodes[node].prev = prev;
            prev = node;
        }
        EntryList { nodes }
    }

    /// The first entry's node, if the list is not empty.
    pub(crate) fn first(&self) -> Option<usize> {
        self.next(HEAD)
    }

    /// The node after `node`, if any.
    pub(crate) fn next(&self, node: usize) -> Option<usize> {
        let next = self.nodes[node].next;
        (next != NIL).then_some(next)
    }

    /// The node holding operation `op`'s call.
    pub(crate) fn call_node(op: usize) -> usize {
        2 * op + 1
    }

    /// The entry a (non-head) node holds.
    pub(crate) fn entry(node: usize) -> Entry {
        assert!(node != HEAD, "the head sentinel holds no entry");
        let op = (node - 1) / 2;
        if (node - 1).is_multiple_of(2) {
            Entry::Call(op)
        } else {
            Entry::Return(op)
        }
    }

    /// Removes operation `op`'s call and return entries.
    pub(crate) fn lift(&mut self, op: usize) {
        self.unlink(Self::call_node(op));
        self.unlink(Self::call_node(op) + 1);
    }

    /// Puts back operation `op`'s entries; must undo the most recent [`EntryList::lift`].
    pub(crate) fn unlift(&mut self, op: usize) {
        self.relink(Self::call_node(op) + 1);
        self.relink(Self::call_node(op));
    }

    fn unlink(&mut self, node: usize) {
        let Node { prev, next } = self.nodes[node];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, node: usize) {
        let Node { prev, next } = self.nodes[node];
        self.nodes[prev].next = node;
        if next != NIL {
            self.nodes[next].prev = node;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(list: &EntryList) -> Vec<Entry> {
        let mut out = Vec::new();
        let mut node = list.first();
        while let Some(n) = node {
            out.push(EntryList::entry(n));
            node = list.next(n);
        }
        out
    }

    #[test]
    fn orders_by_time_calls_first_unknown_last() {
        use Entry::{Call, Return};
        let list = EntryList::new(&[(0, Some(5)), (5, Some(6)), (1, None), (2, Some(3))]);
        assert_eq!(
            entries(&list),
            vec![
                Call(0),
                Call(2),
                Call(3),
                Return(3),
                Call(1),
                Return(0),
                Return(1),
                Return(2)
            ]
        );
    }

    #[test]
    fn lift_and_unlift_restore_the_list() {
        let mut list = EntryList::new(&[(0, Some(5)), (1, Some(2)), (3, Some(9))]);
        let before = entries(&list);
        list.lift(1);
        assert_eq!(
            entries(&list),
            vec![
                Entry::Call(0),
                Entry::Call(2),
                Entry::Return(0),
                Entry::Return(2)
            ]
        );
        list.lift(0);
        assert_eq!(entries(&list), vec![Entry::Call(2), Entry::Return(2)]);
        list.unlift(0);
        list.unlift(1);
        assert_eq!(entries(&list), before);
    }
}
