//! The connection: to one Redis server (`ConnectionManager`, reconnecting
//! by itself) or to a Redis Cluster (redis-rs's cluster connection, which
//! routes each command and script by its key's slot and follows the
//! cluster's moves). Timeouts and retries come from `redis_timeout`: with
//! redis-rs's defaults a command to an unreachable Redis waits about
//! 9.5 s.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::{bounded, StoreError};
use crate::config::StorageConfig;

/// One server's or a whole cluster's connection; clone it freely.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects as `redis_cluster` says. One server is connected lazily
    /// (the first command connects); a cluster must answer to learn its
    /// slots, so with `wait` it is retried until it does (logged once),
    /// and without, its first failure is the answer.
    /// `client` is `redis_url` opened: the server, or the cluster's first
    /// node.
    pub async fn open(
        client: &redis::Client,
        config: &StorageConfig,
        wait: bool,
    ) -> Result<Conn, StoreError> {
        let refused =
            |e: redis::RedisError| StoreError::RedisRefused(format!("storage.redis_url: {e}"));
        let timeout = config.redis_timeout;
        if !config.redis_cluster {
            let manager = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout))
                .set_number_of_retries(1)
                .set_max_delay(timeout);
            return ConnectionManager::new_lazy_with_config(client.clone(), manager)
                .map(Conn::Single)
                .map_err(refused);
        }
        // Where, without the password a URL may carry.
        let addr = client.get_connection_info().addr().to_string();
        let cluster = ClusterClientBuilder::new([config.redis_url.as_str()])
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .retries(1)
            .max_retry_wait(timeout.as_millis() as u64)
            .build()
            .map_err(refused)?;
        let mut logged = false;
        loop {
            match bounded(timeout, cluster.get_async_connection()).await {
                Ok(conn) => return Ok(Conn::Cluster(conn)),
                Err(e) if !wait => {
                    return Err(StoreError::Unavailable(format!(
                        "cannot reach the Redis Cluster at {addr} (storage.redis_url): {e}"
                    )))
                }
                Err(e) => {
                    if !std::mem::replace(&mut logged, true) {
                        tracing::warn!(%addr, error = %e, "the Redis Cluster is not answering; retrying until it does");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    }

    /// Sends `cmd` to every primary (one server: to it) and answers each
    /// one's reply by address: for settings and `SCAN`, which are per node.
    pub async fn on_every_primary(
        &self,
        cmd: &Cmd,
    ) -> Result<Vec<(String, Value)>, redis::RedisError> {
        match self {
            Conn::Single(conn) => {
                let mut conn = conn.clone();
                let value = cmd.query_async(&mut conn).await?;
                Ok(vec![(String::new(), value)])
            }
            Conn::Cluster(conn) => {
                let mut conn = conn.clone();
                let routing = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                match conn.route_command(cmd.clone(), routing).await? {
                    Value::Map(pairs) => Ok(pairs
                        .into_iter()
                        .map(|(addr, v)| (redis::from_redis_value(addr).unwrap_or_default(), v))
                        .collect()),
                    other => Ok(vec![(String::new(), other)]),
                }
            }
        }
    }

    /// Sends `cmd` to the node at `addr` (as `on_every_primary` named it).
    pub async fn on_node(&self, addr: &str, cmd: &Cmd) -> Result<Value, redis::RedisError> {
        match self {
            Conn::Cluster(conn) if !addr.is_empty() => {
                let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                    host: host.to_owned(),
                    port: port.parse().unwrap_or(6379),
                });
                conn.clone().route_command(cmd.clone(), routing).await
            }
            _ => {
                let mut conn = self.clone();
                cmd.query_async(&mut conn).await
            }
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}
