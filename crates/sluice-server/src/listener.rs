//! The listening socket and process limits, set up the way the write-ups in DESIGN.md
//! say they must be: a deep backlog, TCP_NODELAY, SO_REUSEADDR, and the file-descriptor
//! limit raised to the hard limit.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// What start-up found and did, for the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenReport {
    /// The bound address (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// The backlog passed to `listen`.
    pub backlog: u32,
    /// `/proc/sys/net/core/somaxconn`, when readable. The kernel silently caps the
    /// backlog at this value.
    pub somaxconn: Option<u32>,
}

/// Binds a non-blocking listener with the given backlog.
pub fn bind(
    addr: SocketAddr,
    backlog: u32,
) -> std::io::Result<(tokio::net::TcpListener, ListenReport)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_nodelay(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog.min(i32::MAX as u32) as i32)?;
    let std_listener: std::net::TcpListener = socket.into();
    let listener = tokio::net::TcpListener::from_std(std_listener)?;
    let somaxconn = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok());
    let report = ListenReport {
        addr: listener.local_addr()?,
        backlog,
        somaxconn,
    };
    Ok((listener, report))
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the new soft limit.
/// Low descriptor limits dropped connections in the systems Sluice replaces.
pub fn raise_nofile_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own and pass by valid pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit only reads the struct we pass by valid pointer.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok(limit.rlim_cur)
}
