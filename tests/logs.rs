//! Logs an operator can read (issue 18, part 4), in process: the span of a maintenance
//! cycle ends with its cycle, even when a dial of that cycle became a connection that
//! lives on (the connection's task is not a child of the cycle's span).

use peerkeeper::{identity::Keypair, node::Node, transport::memory::MemoryNetwork, Config};
use std::sync::{Arc, Mutex};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Counts the `maintenance_cycle` spans opened and closed.
#[derive(Clone, Default)]
struct CycleSpans {
    counts: Arc<Mutex<(u64, u64)>>,
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for CycleSpans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        if attrs.metadata().name() == "maintenance_cycle" {
            self.counts.lock().unwrap().0 += 1;
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        if ctx
            .span(&id)
            .is_some_and(|s| s.name() == "maintenance_cycle")
        {
            self.counts.lock().unwrap().1 += 1;
        }
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn a_cycle_span_ends_with_its_cycle_while_its_connection_lives_on() {
    let spans = CycleSpans::default();
    let _guard =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));
    let config = Config {
        min_connections: 1,
        expected_connections: 2,
        max_connections: 3,
        ..Config::default()
    };
    let net = MemoryNetwork::new();
    let a = Node::builder(
        config.clone(),
        net.bind("10.0.0.1:1".parse().unwrap()).unwrap(),
    )
    .identity(Keypair::from_seed(1))
    .seed(1)
    .start()
    .unwrap();
    let b = Node::builder(config, net.bind("10.0.0.2:1".parse().unwrap()).unwrap())
        .identity(Keypair::from_seed(2))
        .seed(2)
        .bootstrap(vec![a.local_addr()])
        .start()
        .unwrap();
    // b's first cycle dialed a; the connection is up.
    b.status_watch()
        .wait_for(|s| s.connections == 1)
        .await
        .unwrap();
    b.maintain().await.unwrap();
    // No cycle runs on either node now (both in range): every cycle span has ended,
    // though the connection b's first cycle dialed is open.
    for node in [&a, &b] {
        assert!(!node.inspect(|c| c.is_maintaining()).await.unwrap());
    }
    assert_eq!(b.status().connections, 1);
    let (opened, closed) = *spans.counts.lock().unwrap();
    assert!(opened >= 2, "{opened} cycle spans");
    assert_eq!(opened, closed, "cycle spans still open while no cycle runs");
    b.shutdown().await;
    a.shutdown().await;
}
