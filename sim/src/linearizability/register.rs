//! A compare-and-set register model.

use super::model::Model;

/// A single compare-and-set register holding an integer, initially nil (`None`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CasRegister;

/// An operation on a [`CasRegister`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterInput {
    /// Read the value; answered with [`RegisterOutput::Value`].
    Read,
    /// Set the value; answered with [`RegisterOutput::Ok`].
    Write(i64),
    /// Set the value to `to` if it is `from`: [`RegisterOutput::Ok`] if it was (and the
    /// value changed), [`RegisterOutput::Fail`] if it was not (and nothing changed).
    Cas {
        /// The value the register must hold.
        from: i64,
        /// The value it then holds.
        to: i64,
    },
}

/// The answer to a [`RegisterInput`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOutput {
    /// A read's result (`None` for nil).
    Value(Option<i64>),
    /// A write, or a cas whose compare matched.
    Ok,
    /// A cas whose compare did not match.
    Fail,
}

impl Model for CasRegister {
    type State = Option<i64>;
    type Input = RegisterInput;
    type Output = RegisterOutput;
    type Key = ();

    fn init(&self) -> Option<i64> {
        None
    }

    fn key(&self, _input: &RegisterInput) {}

    fn step(
        &self,
        state: &Option<i64>,
        input: &RegisterInput,
        output: &RegisterOutput,
    ) -> Option<Option<i64>> {
        match (input, output) {
            (RegisterInput::Read, RegisterOutput::Value(value)) => {
                (value == state).then_some(*state)
            }
            (RegisterInput::Write(value), RegisterOutput::Ok) => Some(Some(*value)),
            (RegisterInput::Cas { from, to }, RegisterOutput::Ok) => {
                (*state == Some(*from)).then_some(Some(*to))
            }
            (RegisterInput::Cas { from, .. }, RegisterOutput::Fail) => {
                (*state != Some(*from)).then_some(*state)
            }
            _ => None,
        }
    }

    fn step_unknown(&self, state: &Option<i64>, input: &RegisterInput) -> Option<i64> {
        match input {
            RegisterInput::Read => *state,
            RegisterInput::Write(value) => Some(*value),
            RegisterInput::Cas { from, to } if *state == Some(*from) => Some(*to),
            RegisterInput::Cas { .. } => *state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps() {
        let r = CasRegister;
        let cas = RegisterInput::Cas { from: 1, to: 2 };
        assert_eq!(
            r.step(&None, &RegisterInput::Read, &RegisterOutput::Value(None)),
            Some(None)
        );
        assert_eq!(
            r.step(&None, &RegisterInput::Read, &RegisterOutput::Value(Some(1))),
            None
        );
        assert_eq!(
            r.step(&None, &RegisterInput::Write(1), &RegisterOutput::Ok),
            Some(Some(1))
        );
        assert_eq!(r.step(&Some(1), &cas, &RegisterOutput::Ok), Some(Some(2)));
        assert_eq!(r.step(&Some(3), &cas, &RegisterOutput::Ok), None);
        assert_eq!(r.step(&Some(3), &cas, &RegisterOutput::Fail), Some(Some(3)));
        assert_eq!(r.step(&None, &cas, &RegisterOutput::Fail), Some(None));
        assert_eq!(r.step(&Some(1), &cas, &RegisterOutput::Fail), None);
        assert_eq!(
            r.step(&None, &RegisterInput::Write(1), &RegisterOutput::Fail),
            None
        );
        assert_eq!(r.step_unknown(&Some(1), &cas), Some(2));
        assert_eq!(r.step_unknown(&Some(3), &cas), Some(3));
    }
}
