//! What task functions and run functions are given and return.

use std::any::Any;
use std::fmt;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;

use super::client::Client;
use crate::task::CancelToken;

/// A task code: which function a TASK asks for.
pub type TaskCode = u32;
/// A task id: which request of a connection (the client's choice).
pub type TaskId = u32;

/// Data a task function hands to the rest of the world about its run
/// ([`Client::run_data`]), kept until the run function ends.
pub type RunData = Arc<dyn Any + Send + Sync>;

/// The server's arguments, passed to every task function
/// ([`TaskServer::with_args`](super::TaskServer::with_args)).
pub type Args = Arc<dyn Any + Send + Sync>;

/// A TASK, as its task function sees it.
pub struct Request<'a> {
    pub(crate) id: TaskId,
    pub(crate) code: TaskCode,
    pub(crate) payload: Bytes,
    pub(crate) client: &'a Client,
    pub(crate) args: &'a Args,
}

impl fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("code", &self.code)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

impl Request<'_> {
    /// The task id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task code.
    pub fn code(&self) -> TaskCode {
        self.code
    }

    /// The request data (zero-copy: a view of the connection's input).
    pub fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The client that sent it.
    pub fn client(&self) -> &Client {
        self.client
    }

    /// The server's arguments.
    pub fn args(&self) -> &Args {
        self.args
    }
}

/// The run function of a task: runs on the server's workers, concurrently with others.
pub type RunFn = Box<dyn FnOnce(&RunContext) -> Result<Output, RunError> + Send>;

/// What a task function returns: the run function (if there is work to do) and its
/// run data.
pub struct Task {
    pub(crate) run: Option<RunFn>,
    pub(crate) data: Option<RunData>,
    /// Run on the connection's turn rather than on a worker.
    pub(crate) inline: bool,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("run", &self.run.is_some())
            .field("data", &self.data.is_some())
            .field("inline", &self.inline)
            .finish()
    }
}

impl Task {
    /// A task whose reply is `run`'s.
    pub fn run<F>(run: F) -> Task
    where
        F: FnOnce(&RunContext) -> Result<Output, RunError> + Send + 'static,
    {
        Task {
            run: Some(Box::new(run)),
            data: None,
            inline: false,
        }
    }

    /// A task whose run function is quick and never blocks (an echo, a lookup in
    /// memory): it runs at once on the connection's turn, and a reply of up to 64 KiB
    /// (or an error) is written straight into the connection's output, with no hand-off
    /// to a worker and back. It still gets its cancellation token and task id; it does
    /// not run concurrently with the connection's next task function. A longer output
    /// (a reader, a stream, more than 64 KiB) is sent from a worker as usual.
    pub fn run_inline<F>(run: F) -> Task
    where
        F: FnOnce(&RunContext) -> Result<Output, RunError> + Send + 'static,
    {
        Task {
            inline: true,
            ..Task::run(run)
        }
    }

    /// A task with nothing to run: answered OK with no output.
    pub fn done() -> Task {
        Task {
            run: None,
            data: None,
            inline: false,
        }
    }

    /// Attaches run data, readable through [`Client::run_data`] while the task runs.
    pub fn with_data(mut self, data: RunData) -> Task {
        self.data = Some(data);
        self
    }
}

/// What a run function is given.
pub struct RunContext {
    pub(crate) id: TaskId,
    pub(crate) cancel: CancelToken,
    pub(crate) client: Client,
}

impl fmt::Debug for RunContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunContext")
            .field("id", &self.id)
            .field("cancelled", &self.cancel.is_cancelled())
            .finish()
    }
}

impl RunContext {
    /// The task id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The task's cancellation: poll it, or sleep on it.
    pub fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Whether the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The client the task came from.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A run function's output, sent as DATA frames then END (`PROTOCOL.md` §4.1).
#[non_exhaustive]
pub enum Output {
    /// No output.
    Empty,
    /// One buffer (sent zero-copy, in chunks of up to 64 KiB).
    Bytes(Bytes),
    /// A reader, read to its end in 64 KiB chunks as the client takes them.
    Reader(Box<dyn Read + Send>),
    /// A stream of buffers, each sent as it comes (the stream paused while the
    /// connection is over its output mark); an `Err` fails the client (§4.6, reason 4).
    Stream(Box<dyn Iterator<Item = std::io::Result<Bytes>> + Send>),
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Empty => f.write_str("Empty"),
            Output::Bytes(b) => write!(f, "Bytes({})", b.len()),
            Output::Reader(_) => f.write_str("Reader"),
            Output::Stream(_) => f.write_str("Stream"),
        }
    }
}

impl From<Bytes> for Output {
    fn from(b: Bytes) -> Output {
        Output::Bytes(b)
    }
}

/// Why a run function failed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// An error with an error code (0–249): answered ERROR (§4.2); the connection goes
    /// on.
    Code(u8),
    /// Any other failure: serious; the client is put into an error state and dropped
    /// (GOODBYE reason 4).
    Failed(String),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Code(c) => write!(f, "task failed with error code {c}"),
            RunError::Failed(why) => write!(f, "run function failed: {why}"),
        }
    }
}

impl std::error::Error for RunError {}

/// A task function's failure: serious; the client is put into an error state and
/// dropped (GOODBYE reason 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskError(pub String);

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task function failed: {}", self.0)
    }
}

impl std::error::Error for TaskError {}

/// A task function: reads the request and returns the run function, or fails.
pub type TaskFn = dyn Fn(&mut Request<'_>) -> Result<Task, TaskError> + Send + Sync;
