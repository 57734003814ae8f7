//! Async tasks over one connection: clients send tasks, each with a task code and a
//! task id; the server runs them and answers each when it finishes, in any order, with
//! streamed output. The wire protocol is `PROTOCOL.md` at the repository root;
//! [`codec`] is its frames, with no I/O; [`TaskServer`] serves it.

mod cancel;
pub mod client;
pub mod codec;
mod server;

pub use cancel::CancelToken;
pub use codec::ByteOrder;
pub use server::{
    Args, Client, ConnState, Counter, Output, Request, ReservedCode, RunContext, RunData, RunError,
    RunFn, Task, TaskCode, TaskConfig, TaskError, TaskFn, TaskId, TaskMetadata, TaskMetrics,
    TaskServer, TaskShutdown,
};
