//! Ring set-up, and the start-up probe that decides whether io_uring can be used here.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::OnceLock;
use std::time::Duration;

use io_uring::{cqueue, opcode, types, IoUring, Probe};

use super::buf_ring::BufRing;

/// Builds a ring with the cheapest task-running mode the kernel offers: completions
/// posted only when the poller enters the kernel anyway (`DEFER_TASKRUN`, 6.1), else
/// cooperative task running (5.19), else the default. With `disabled` the ring starts
/// disabled and binds to the thread that enables it, so it can be built on one thread
/// and run on another.
fn build(entries: u32, disabled: bool) -> io::Result<IoUring> {
    let mut last = None;
    for mode in 0..3 {
        let mut b = IoUring::builder();
        b.setup_cqsize(4 * entries).setup_submit_all();
        if disabled {
            b.setup_r_disabled();
        }
        match mode {
            0 => {
                b.setup_single_issuer().setup_defer_taskrun();
            }
            1 => {
                b.setup_coop_taskrun().setup_taskrun_flag();
            }
            _ => {}
        }
        match b.build(entries) {
            Ok(ring) => return Ok(ring),
            // An older kernel refuses flags it does not know with EINVAL: try fewer.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("at least one attempt"))
}

/// Whether `ring`'s kernel supports operation `code`.
pub(super) fn supports(ring: &IoUring, code: u8) -> bool {
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe).is_ok() && probe.is_supported(code)
}

/// A poller's ring, disabled until the poller thread enables it.
pub(super) fn build_ring(entries: u32) -> io::Result<IoUring> {
    build(entries, true)
}

/// Whether io_uring can run netloop here; `Err` says why not. Probed once per process:
/// ring set-up, the operations the backend uses, a provided-buffer ring, and a
/// multishot receive that really delivers.
pub(crate) fn probe() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(run_probe).clone()
}

fn run_probe() -> Result<(), String> {
    let ring = build(8, false).map_err(|e| match e.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EPERM) => {
            let setting = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| format!(" (kernel.io_uring_disabled = {})", s.trim()))
                .unwrap_or_default();
            format!("io_uring is not permitted here (EPERM){setting}")
        }
        Some(libc::ENOMEM) => "cannot set up a ring: out of locked memory (RLIMIT_MEMLOCK)".into(),
        _ => format!("cannot set up a ring: {e}"),
    })?;
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("cannot probe io_uring operations: {e}"))?;
    for (code, name) in [
        (opcode::RecvMulti::CODE, "RECV"),
        (opcode::AcceptMulti::CODE, "ACCEPT"),
        (opcode::PollAdd::CODE, "POLL_ADD"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL"),
        (opcode::Send::CODE, "SEND"),
        (opcode::SendMsg::CODE, "SENDMSG"),
        (opcode::Connect::CODE, "CONNECT"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("the kernel's io_uring lacks the {name} operation"));
        }
    }
    let bufs = BufRing::new(&ring, 0, 8, 64)
        .map_err(|e| format!("cannot register a provided-buffer ring (kernel 5.19+): {e}"))?;
    multishot_receive_works(ring, bufs)
}

/// Arms a multishot receive on a socket pair, sends a byte and expects it back with the
/// receive still armed. Tears the ring down before its buffers.
fn multishot_receive_works(mut ring: IoUring, bufs: BufRing) -> Result<(), String> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid out-array of two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(format!("socketpair: {}", io::Error::last_os_error()));
    }
    // SAFETY: socketpair returned two new descriptors nobody else owns.
    let (a, b) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let recv = opcode::RecvMulti::new(types::Fd(a.as_raw_fd()), 0)
        .build()
        .user_data(1);
    // SAFETY: the receive uses the registered buffer group only; the socket and the
    // buffers outlive it (the ring is dropped first, below).
    unsafe { ring.submission().push(&recv) }.map_err(|_| "submission queue full".to_string())?;
    // SAFETY: writes one byte from a valid buffer.
    unsafe { libc::write(b.as_raw_fd(), b"x".as_ptr().cast(), 1) };
    let ts = types::Timespec::from(Duration::from_secs(1));
    let args = types::SubmitArgs::new().timespec(&ts);
    let outcome = match ring.submitter().submit_with_args(1, &args) {
        Err(e) if e.raw_os_error() != Some(libc::ETIME) => Err(format!("io_uring_enter: {e}")),
        _ => match ring.completion().next() {
            Some(c) if c.result() == 1 && cqueue::more(c.flags()) => Ok(()),
            Some(c) if c.result() == -libc::EINVAL => {
                Err("multishot receive is not supported (kernel 6.0+)".to_string())
            }
            Some(c) => Err(format!(
                "multishot receive test: unexpected result {} (flags {:#x})",
                c.result(),
                c.flags()
            )),
            None => Err("multishot receive test: no completion within 1 s".to_string()),
        },
    };
    // Dropping the ring cancels the receive and waits for it; only then the buffers go.
    drop(ring);
    drop(bufs);
    outcome
}
