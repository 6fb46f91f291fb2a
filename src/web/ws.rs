//! `/ws`: the overview pushed at every refresh, and the detail of one subscribed model.
//!
//! The overview is serialised once per refresh and shared by every client. Each client
//! reads it from a bounded broadcast queue: a client that cannot keep up falls
//! `QUEUE` messages behind and is dropped, so it never slows the store or other clients.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{OwnedSemaphorePermit, broadcast, watch};

use super::AppState;
use super::api::{alert_json, model_state, redact_alerts};
use super::cache::Key;
use crate::batch::model_line;
use crate::live::Live;

/// Overview messages a client may fall behind before it is dropped.
const QUEUE: usize = 16;
/// A client whose socket accepts nothing for this long is gone: dropped without a close
/// frame, which would wait behind the data it does not read.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients only send subscriptions: a few hundred bytes at most.
const MAX_INCOMING: usize = 4096;
/// Close code 1008 (policy violation): the reason says why.
const CLOSE_TOO_SLOW: u16 = 1008;

/// The columns of a model row in an overview message (see docs/api.md).
pub(crate) const COLUMNS: [&str; 15] = [
    "model",
    "state",
    "qps",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "cpu_percent",
    "mem_bytes",
    "sec",
    "sec_requests",
    "sec_errors",
    "ttfb_p95_ms",
    "itl_p95_ms",
    "tokens_per_s",
];

/// The overview, serialised once per refresh, for every client.
#[derive(Clone)]
pub(crate) struct Broadcast {
    tx: broadcast::Sender<Utf8Bytes>,
}

impl Broadcast {
    pub(crate) fn start(mut views: watch::Receiver<Live>) -> Self {
        let (tx, _) = broadcast::channel(QUEUE);
        let sender = tx.clone();
        tokio::spawn(async move {
            while views.changed().await.is_ok() {
                let view = views.borrow_and_update().clone();
                // Nobody listening: do not serialise for nothing.
                if sender.receiver_count() > 0 {
                    let _ = sender.send(overview_message(&view));
                }
            }
        });
        Self { tx }
    }
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn r4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

/// One row per model, columns as [`COLUMNS`]: arrays, not objects, because 100 models
/// must fit in a few KB every second.
pub(crate) fn overview_message(view: &Live) -> Utf8Bytes {
    let now_sec = view.ts_ms.div_euclid(1000);
    let rows: Vec<Value> = view
        .models
        .iter()
        .map(|m| {
            let s = &m.stats;
            let res = view.resources(&m.model);
            // The newest finished second: clients append it to their sparklines once,
            // and the second still filling holds a fraction of its requests.
            let last = m.series.iter().rev().find(|p| p.sec < now_sec);
            json!([
                m.model,
                model_state(view, m),
                r2(s.qps),
                s.error_rate.map(r4),
                s.p50_ms.map(r2),
                s.p95_ms.map(r2),
                s.p99_ms.map(r2),
                res.and_then(|r| r.usage.cpu_percent).map(r2),
                res.and_then(|r| r.usage.mem_bytes),
                last.map(|p| p.sec),
                last.map(|p| p.requests),
                last.map(|p| p.errors),
                s.ttfb_p95_ms.map(r2),
                m.itl_p95_ms().map(r2),
                m.tokens_per_s().map(r2),
            ])
        })
        .collect();
    // The monitor's own active alerts, whole: a handful at most, and what a dashboard
    // must show first (its figures are blind or short without them).
    let monitor: Vec<Value> = view
        .alerts
        .active
        .iter()
        .filter(|a| a.is_monitor())
        .map(alert_json)
        .collect();
    let msg = json!({
        "t": "o",
        "ts": view.ts_ms,
        "broker": view.broker.state,
        "broker_node": view.broker.node_authority(),
        "docker": view.docker.state,
        "alerts": view.alerts.active.len(),
        "monitor": monitor,
        "m": rows,
    });
    Utf8Bytes::from(msg.to_string())
}

fn detail_message(view: &Live, name: &str) -> Vec<u8> {
    let msg = match view.model(name) {
        Some(m) => {
            let mut line = model_line(view, m);
            redact_alerts(&mut line.alerts);
            json!({
                "t": "d",
                "ts": view.ts_ms,
                "state": model_state(view, m),
                "detail": line,
                "routes": m.routes,
                "instances": m.instances,
                "last": m.series.last(),
            })
        }
        None => json!({"t": "d", "ts": view.ts_ms, "detail": null, "model": name,
                       "error": "no such model"}),
    };
    msg.to_string().into_bytes()
}

/// The detail message of `name` on the newest view, built once for every client
/// subscribed to it. `None`: no build slot in time; the next refresh brings another.
async fn shared_detail(state: &AppState, name: &str) -> Option<Utf8Bytes> {
    let owned = name.to_owned();
    let key = Key::WsDetail {
        model: owned.clone(),
    };
    let body = state
        .cache
        .get(key, move |view| detail_message(view, &owned))
        .await
        .ok()?;
    Utf8Bytes::try_from(body.json.clone()).ok()
}

pub(crate) async fn upgrade(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    let Ok(permit) = state.ws_slots.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many WebSocket clients\n",
        )
            .into_response();
    };
    ws.max_message_size(MAX_INCOMING)
        .max_frame_size(MAX_INCOMING)
        .on_upgrade(move |socket| client(socket, state, permit))
}

#[derive(Deserialize)]
struct Subscribe {
    /// A model name, or `null` to stop receiving details.
    sub: Option<String>,
}

async fn send(socket: &mut WebSocket, msg: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(msg)).await,
        Ok(Ok(()))
    )
}

async fn client(mut socket: WebSocket, state: AppState, _permit: OwnedSemaphorePermit) {
    let mut overview = state.overview.tx.subscribe();
    let hello = json!({"t": "hello", "cols": COLUMNS}).to_string();
    let first = overview_message(&state.views.borrow().clone());
    if !send(&mut socket, Message::Text(hello.into())).await
        || !send(&mut socket, Message::Text(first)).await
    {
        return;
    }
    let mut subscribed: Option<String> = None;
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    let Ok(sub) = serde_json::from_str::<Subscribe>(t.as_str()) else {
                        continue;
                    };
                    subscribed = sub.sub;
                    if let Some(name) = &subscribed
                        && let Some(msg) = shared_detail(&state, name).await
                        && !send(&mut socket, Message::Text(msg)).await
                    {
                        return;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            msg = overview.recv() => match msg {
                Ok(text) => {
                    if !send(&mut socket, Message::Text(text)).await {
                        return;
                    }
                    if let Some(name) = &subscribed
                        && let Some(msg) = shared_detail(&state, name).await
                        && !send(&mut socket, Message::Text(msg)).await
                    {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let frame = CloseFrame {
                        code: CLOSE_TOO_SLOW,
                        reason: Utf8Bytes::from_static("too slow: fell behind the updates"),
                    };
                    let _ = send(&mut socket, Message::Close(Some(frame))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BrokerView, Store, StoreConfig};

    #[test]
    fn the_overview_sends_the_newest_finished_second_for_sparklines() {
        const T: i64 = 1_800_000_000;
        // Twenty requests in each of five seconds, then the first three of the sixth,
        // which is still filling when the view is taken a quarter into it.
        let events: Vec<Value> = (0..103_i64)
            .map(|i| {
                json!({"ts": (T + i / 20) * 1_000_000 + (i % 20) * 10_000, "model": "m",
                       "instance": "pod", "method": "GET", "route": "/",
                       "status": 200, "duration_us": 1000})
            })
            .collect();
        let body = json!({"v": 1, "source": {"kind": "demo", "instance": "t", "pid": 1},
                          "dropped": 0, "events": events})
        .to_string();
        let now_us = (T + 5) * 1_000_000 + 250_000;
        let batch = modelmon_contract::decode_batch(body.as_bytes(), None, now_us).expect("batch");
        let mut store = Store::new(StoreConfig::default());
        store.apply(&batch, now_us);
        let live = Live::from(store.view(now_us, BrokerView::default()));

        let msg: Value = serde_json::from_str(overview_message(&live).as_str()).expect("json");
        let row = &msg["m"][0];
        let col = |name: &str| &row[COLUMNS.iter().position(|c| *c == name).expect("a column")];
        assert_eq!(col("sec"), &json!(T + 4), "{row}");
        assert_eq!(col("sec_requests"), &json!(20), "a whole second: {row}");
    }
}
