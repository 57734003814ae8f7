//! Spawning the poller and worker threads.

use std::sync::Arc;
use std::thread;

use crate::dial::DialShared;
use crate::dispatch::WorkerPool;
use crate::poller::{Balancer, Config, Mode, Poller, Remote};
use crate::session::Hooks;
use crate::{sys, Dispatch, Error, ServerHandle};

use super::handle::Parts;
use super::{listen, Builder};

pub(super) fn start(b: Builder, hooks: Option<Arc<dyn Hooks>>) -> Result<ServerHandle, Error> {
    b.validate()?;
    let backend = crate::Backend::resolve(b.backend, b.fail_io_uring_probe)?;
    let cpus = sys::allowed_cpus();
    let pollers = b
        .pollers
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    let config = Arc::new(Config {
        read_buffer_size: b.read_buffer_size,
        pooled_buffers: b.pooled_buffers,
        input_high_water: b.input_high_water,
        input_low_water: b.input_low_water.unwrap_or(b.input_high_water / 2),
        output_high_water: b.output_high_water,
        max_want: b.max_want,
        queue_capacity: b.queue_capacity,
        timeouts: crate::conn::Timeouts {
            read: b.read_timeout,
            write: b.write_timeout,
            idle: b.idle_timeout,
        },
        handshake_timeout: b.handshake_timeout,
        max_connections: b.max_connections,
        nodelay: b.nodelay,
        tcp_keepalive: b.tcp_keepalive,
        zero_copy_send: b.zero_copy_send,
        transport: b.listener_transports()?,
    });
    let remotes = (0..pollers)
        .map(|i| Remote::new(i, b.queue_capacity))
        .collect::<std::io::Result<Vec<_>>>()?;
    let balancer = Arc::new(Balancer::new(b.balance, remotes.clone()));
    let bound = listen::bind(&b, pollers, hooks.as_ref())?;
    let pool = match b.dispatch {
        Dispatch::Inline => None,
        Dispatch::Pool { threads } => Some(WorkerPool::new(threads, b.queue_capacity * pollers)),
    };
    let mut loops = Vec::with_capacity(pollers);
    for (remote, listeners) in remotes.iter().zip(bound.per_poller) {
        let mode = match &pool {
            None => Mode::Inline,
            Some(pool) => Mode::Pool {
                pool: pool.clone(),
                in_flight: 0,
                backlog: Default::default(),
            },
        };
        loops.push(Poller::new(
            remote.clone(),
            listeners,
            balancer.clone(),
            mode,
            config.clone(),
            backend,
        )?);
    }
    let handle = ServerHandle::new(Parts {
        remotes: remotes.clone(),
        dial: Arc::new(DialShared::new(balancer, b.output_high_water)),
        connect_timeout: b.connect_timeout,
        local_addrs: bound.local_addrs,
        unix_paths: bound.unix_paths,
        handover: std::sync::Mutex::new(bound.handover),
        pool: pool.clone(),
        backend,
    });
    for (i, poller) in loops.into_iter().enumerate() {
        let cpu = (b.pin_cpus && !cpus.is_empty()).then(|| cpus[i % cpus.len()]);
        let spawned = thread::Builder::new()
            .name(format!("netloop-poller-{i}"))
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if let Err(e) = sys::pin_current_thread(cpu) {
                        tracing::warn!(cpu, error = %e, "cannot pin poller thread");
                    }
                }
                poller.run()
            });
        match spawned {
            Ok(join) => handle.add_poller_thread(join),
            Err(e) => return Err(handle.abort(e)),
        }
    }
    if let Some(pool) = &pool {
        match pool.start(remotes) {
            Ok(joins) => handle.add_worker_threads(joins),
            Err(e) => return Err(handle.abort(e)),
        }
    }
    Ok(handle)
}
