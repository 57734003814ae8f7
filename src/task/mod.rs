//! Async tasks over one connection: clients send tasks, each with a task code and a
//! task id; the server runs them and answers each when it finishes, in any order, with
//! streamed output. The wire protocol is `PROTOCOL.md` at the repository root;
//! [`codec`] is its frames, with no I/O.

pub mod codec;
