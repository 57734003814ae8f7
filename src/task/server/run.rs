//! A run function on a worker: its reply framed per `PROTOCOL.md` §4 and sent through
//! the connection's handle, paced by the connection's output mark.

use std::io::Read;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use super::client::Client;
use super::task::{Output, RunContext, RunError, RunFn, TaskId};
use crate::task::codec::{self, reason, ServerFrame, MAX_CHUNK};
use crate::task::CancelToken;
use crate::Error;

/// Why a reply stopped half way.
enum Stop {
    /// The task was cancelled: CANCELLED ends it.
    Cancelled,
    /// The connection is gone (or its output would not drain within the write
    /// timeout): nothing more can be sent.
    Gone,
    /// The output failed: the client is dropped (GOODBYE reason 4).
    Failed(String),
}

/// Runs task `id` and sends its reply; the task's entry is released before the
/// terminal frame goes out, so the client may reuse the id as soon as it sees it.
pub(crate) fn run(client: Client, id: TaskId, f: RunFn, cancel: CancelToken) {
    if cancel.is_cancelled() || client.shared.is_failed() {
        return terminal(&client, id, ServerFrame::Cancelled(id));
    }
    let outcome = call(&client, id, f, &cancel);
    reply(client, id, outcome, cancel);
}

/// What a run function returned (`Err` if it panicked).
pub(crate) type Outcome = std::thread::Result<Result<Output, RunError>>;

/// Calls a run function.
pub(crate) fn call(client: &Client, id: TaskId, f: RunFn, cancel: &CancelToken) -> Outcome {
    let ctx = RunContext {
        id,
        cancel: cancel.clone(),
        client: client.clone(),
    };
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&ctx)))
}

/// Sends a run function's reply (from a worker: paced by the output mark).
pub(crate) fn reply(client: Client, id: TaskId, outcome: Outcome, cancel: CancelToken) {
    let order = client.shared.order;
    let write_timeout = client.shared.write_timeout;
    let output = match outcome {
        Err(_) => return fail(&client, id, "the run function panicked".into()),
        Ok(Err(RunError::Failed(why))) => return fail(&client, id, why),
        Ok(Err(RunError::Code(_))) | Ok(Ok(_)) if cancel.is_cancelled() => {
            return terminal(&client, id, ServerFrame::Cancelled(id))
        }
        Ok(Err(RunError::Code(code))) => {
            client.metrics().errors.inc();
            return terminal(&client, id, ServerFrame::Error(id, code));
        }
        Ok(Ok(output)) => output,
    };
    let mut ok = BytesMut::new();
    ServerFrame::Ok(id).write(&mut ok, order);
    let sent = match output {
        Output::Empty => Ok(()),
        Output::Bytes(b) if b.len() <= MAX_CHUNK && !b.is_empty() => {
            // The common case in one send: OK, one DATA, END.
            codec::write_data_header(&mut ok, order, id, b.len());
            let mut end = BytesMut::new();
            ServerFrame::End(id).write(&mut end, order);
            client.release(id);
            client.metrics().ok.inc();
            let _ = send(&client, &[ok.freeze(), b, end.freeze()], write_timeout);
            return finished(&client);
        }
        Output::Bytes(b) => stream(
            &client,
            id,
            &cancel,
            &mut ok,
            std::iter::once(Ok(b)),
            write_timeout,
        ),
        Output::Reader(r) => stream(&client, id, &cancel, &mut ok, chunks(r), write_timeout),
        Output::Stream(s) => stream(&client, id, &cancel, &mut ok, s, write_timeout),
    };
    match sent {
        Ok(()) => {
            client.metrics().ok.inc();
            let mut frames = ok;
            ServerFrame::End(id).write(&mut frames, order);
            client.release(id);
            let _ = send(&client, &[frames.freeze()], write_timeout);
            finished(&client);
        }
        Err(Stop::Cancelled) => terminal(&client, id, ServerFrame::Cancelled(id)),
        Err(Stop::Gone) => {
            client.release(id);
            finished(&client);
        }
        Err(Stop::Failed(why)) => fail(&client, id, why),
    }
}

/// Sends OK (held in `head` until the first chunk) and the output as DATA frames.
fn stream(
    client: &Client,
    id: TaskId,
    cancel: &CancelToken,
    head: &mut BytesMut,
    chunks: impl Iterator<Item = std::io::Result<Bytes>>,
    write_timeout: Duration,
) -> Result<(), Stop> {
    let order = client.shared.order;
    for chunk in chunks {
        if cancel.is_cancelled() {
            flush_head(client, head, write_timeout)?;
            return Err(Stop::Cancelled);
        }
        let mut chunk = chunk.map_err(|e| Stop::Failed(format!("the output failed: {e}")))?;
        while !chunk.is_empty() {
            let piece = chunk.split_to(chunk.len().min(MAX_CHUNK));
            codec::write_data_header(head, order, id, piece.len());
            let header = head.split().freeze();
            send(client, &[header, piece], write_timeout)?;
        }
    }
    // A stream that stopped because it saw the cancellation is a cancelled task.
    if cancel.is_cancelled() {
        flush_head(client, head, write_timeout)?;
        return Err(Stop::Cancelled);
    }
    Ok(())
}

/// Sends whatever is held in `head` (an OK not yet sent).
fn flush_head(client: &Client, head: &mut BytesMut, t: Duration) -> Result<(), Stop> {
    if head.is_empty() {
        return Ok(());
    }
    send(client, &[head.split().freeze()], t)
}

/// A reader in chunks of up to [`MAX_CHUNK`].
fn chunks(mut r: Box<dyn Read + Send>) -> impl Iterator<Item = std::io::Result<Bytes>> {
    std::iter::from_fn(move || {
        let mut buf = BytesMut::zeroed(MAX_CHUNK);
        loop {
            return match r.read(&mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some(Ok(buf.freeze()))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Some(Err(e)),
            };
        }
    })
}

/// Queues frames on the connection, waiting (up to the write timeout) while it is over
/// its output mark: a fast producer is paused, not buffered. Nothing is sent once the
/// client is being dropped: its GOODBYE is the last frame (`PROTOCOL.md` §4.6).
fn send(client: &Client, frames: &[Bytes], write_timeout: Duration) -> Result<(), Stop> {
    let conn = &client.shared.conn;
    if client.shared.is_failed() {
        return Err(Stop::Gone);
    }
    loop {
        match conn.send_all(frames) {
            Ok(()) => return Ok(()),
            Err(Error::Full) => {
                if conn.wait_writable(write_timeout).is_err() {
                    // The core's write timeout closes the connection; make sure.
                    let _ = conn.close();
                    return Err(Stop::Gone);
                }
            }
            Err(_) => return Err(Stop::Gone),
        }
    }
}

/// Releases the task and sends its terminal frame.
fn terminal(client: &Client, id: TaskId, frame: ServerFrame) {
    if matches!(frame, ServerFrame::Cancelled(_)) {
        client.metrics().cancelled.inc();
    }
    let mut out = BytesMut::new();
    frame.write(&mut out, client.shared.order);
    client.release(id);
    let _ = send(client, &[out.freeze()], client.shared.write_timeout);
    finished(client);
}

/// A serious failure: GOODBYE reason 4, every task cancelled, the connection closed.
fn fail(client: &Client, id: TaskId, why: String) {
    tracing::warn!(parent: &client.span(), task = id, %why, "run function failed; dropping the client");
    client.metrics().failures.inc();
    client.release(id);
    super::drop_client(client, reason::RUN_FUNCTION_FAILED, &why);
}

/// A task ended: a draining or finishing client with no task left can close (its
/// turn decides).
fn finished(client: &Client) {
    if client.is_idle() {
        let _ = client.shared.conn.wake();
    }
}
