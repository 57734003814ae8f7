//! Chat rooms in the browser: one server serves the page over HTTP and the rooms over
//! WebSocket on the same port. Each room is a hub topic; the example keeps who is in
//! which room and sends the room its member list on every join and leave.
//!
//! ```text
//! cargo run --release --example chat -- --addr 127.0.0.1:8080
//! ```
//! Then open <http://127.0.0.1:8080/?room=lobby> (it asks for a name) in two windows.
//! `GET /` is the page (`examples/chat/index.html`); `/ws?room=R&name=N` joins room R as
//! N (a name taken in that room is refused with close code 4001). What the server sends
//! is in `examples/chat/wire.rs`. `scripts/chat_browser.sh` runs it in headless
//! Chromium. Stops gracefully on Ctrl-C / SIGTERM.

#[path = "chat/query.rs"]
mod query;
#[path = "chat/rooms.rs"]
mod rooms;
mod support;
#[path = "chat/wire.rs"]
mod wire;

use clap::Parser;
use netloop::http::{Http, Request, Response, Upgrade};
use netloop::ws::hub::Hub;
use netloop::ws::{self, close, Closed, DeflateConfig, Message, WsConn, WsHandler};

use rooms::Rooms;

/// The page, compiled in: the example is one binary with nothing to find at run time.
const PAGE: &[u8] = include_bytes!("chat/index.html");

/// Largest message a member may send, in bytes (the page stops at 2,000 characters).
const MAX_MESSAGE: usize = 8 * 1024;

/// The close code for a name already used in the room (4000-4999 are the
/// application's, RFC 6455 §7.4.2).
const NAME_TAKEN: u16 = 4001;

#[derive(Parser)]
#[command(about = "netloop chat rooms: an HTTP page and WebSocket rooms on one port")]
struct Args {
    #[command(flatten)]
    server: support::ServerArgs,
}

/// The rooms: the hub carries what is said, `rooms` who is there.
struct Chat {
    hub: Hub,
    rooms: Rooms,
}

/// A member: the room joined and the name it is known by.
struct Member {
    room: String,
    name: String,
}

/// The hub topic a room's messages go to.
fn topic(room: &str) -> String {
    format!("room/{room}")
}

impl WsHandler for Chat {
    /// `None` for a connection that was refused a place (its name was taken).
    type State = Option<Member>;

    fn on_open(&self, ws: &mut WsConn<'_>, req: &Request) -> Option<Member> {
        // The upgrade hook admitted only requests with a valid room and name.
        let (room, name) = query::room_and_name(req.path())?;
        let handle = ws.handle();
        let topic = topic(&room);
        // Subscribed before the list goes out, so the newcomer gets it too.
        let joined = self.rooms.join(&room, &name, |names| {
            self.hub.subscribe(&handle, &topic);
            self.hub.publish(&topic, wire::members(names));
        });
        if !joined {
            ws.close(NAME_TAKEN, "that name is taken in this room");
            return None;
        }
        Some(Member { room, name })
    }

    fn on_message(&self, member: &mut Option<Member>, ws: &mut WsConn<'_>, msg: Message) {
        let Some(member) = member else { return };
        match msg {
            Message::Text(text) if !text.as_str().trim().is_empty() => {
                let said = wire::message(&member.name, text.as_str());
                self.hub.publish(&topic(&member.room), said);
            }
            Message::Text(_) => {}
            Message::Binary(_) => ws.close(close::UNSUPPORTED_DATA, "text messages only"),
        }
    }

    fn on_close(&self, member: Option<Member>, _closed: Closed) {
        // The hub has already dropped the connection from the topic.
        if let Some(Member { room, name }) = member {
            self.rooms.leave(&room, &name, |names| {
                self.hub.publish(&topic(&room), wire::members(names));
            });
        }
    }
}

/// Plain HTTP: the page at `/`, nothing else.
fn page(req: &Request, res: &mut Response<'_>) {
    let path = req.path().split('?').next().unwrap_or("");
    if path == "/" && matches!(req.method(), "GET" | "HEAD") {
        res.header("Content-Type", "text/html; charset=utf-8")
            // The page loads nothing from anywhere; say so, so injected markup could not.
            .header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'",
            )
            .header("Cache-Control", "no-cache")
            .body(PAGE);
    } else {
        res.status(404, "Not Found")
            .header("Content-Type", "text/plain")
            .body(b"not found; the chat is at /\n");
    }
}

/// Whether a browser's handshake comes from a page this server served: its `Origin`
/// names the `Host` it connects to. Without the check any site a visitor opens could
/// join rooms in their name (cross-site WebSocket hijacking). Clients that send no
/// `Origin` (not browsers) are let in.
fn same_origin(req: &Request) -> bool {
    let Some(origin) = req.header("origin") else {
        return true;
    };
    let host = req.header("host").unwrap_or_default();
    [&b"http://"[..], b"https://"]
        .iter()
        .any(|scheme| origin.strip_prefix(*scheme) == Some(host))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    support::init_logging();
    let args = Args::parse();
    let config = ws::Config::default()
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        // Without context takeover (the default) a broadcast is compressed once for
        // the whole room.
        .deflate(DeflateConfig::default());
    let chat = Chat {
        hub: Hub::new(),
        rooms: Rooms::default(),
    };
    let join = ws::upgrade(chat, config);
    let site = Http::new(page).on_upgrade(move |req, conn| {
        if !req.path().starts_with("/ws?") && req.path() != "/ws" {
            return Upgrade::Declined;
        }
        if !same_origin(req) {
            return Upgrade::Refused {
                status: 403,
                reason: "Forbidden",
                headers: &[],
            };
        }
        if query::room_and_name(req.path()).is_none() {
            return Upgrade::Refused {
                status: 400,
                reason: "Bad Request",
                headers: &[],
            };
        }
        join(req, conn)
    });
    let server = args.server.builder("127.0.0.1:8080").serve(site)?;
    support::run_until_signal(&server, "chat", args.server.grace())
}
