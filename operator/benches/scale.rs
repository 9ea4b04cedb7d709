//! Scale benchmark: how long the operator takes to bring N tenants (2 namespaces each) to Ready
//! from a cold start against kubesim, the operator process's peak memory, and the cost of a
//! resync pass in which nothing changed. Prints figures; asserts nothing about speed.
//!
//! The reference, in the same run: a minimal applier that server-side applies exactly the
//! objects the operator builds for the same tenants (its own builders), with the same
//! concurrency, against a fresh kubesim of the same settings — the cost of the writes alone.
//! The machine is noisy: the applier and the operator's cold start take turns (the applier
//! first and last; `GOVCLOUD_BENCH_ROUNDS` operator runs, 2 by default), and the ratio printed
//! is of the medians.
//!
//!   cargo bench -p govcloud-operator --bench scale               # 1,000 then 10,000 tenants
//!   cargo bench -p govcloud-operator --bench scale -- 200 2000   # other sizes

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use govcloud_tenant::crd::{Phase, Tenant};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, CustomResourceExt};
use kubesim::{Config, KubeSim};

fn tenant(i: usize) -> anyhow::Result<Tenant> {
    Ok(serde_json::from_value(serde_json::json!({
        "apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant",
        "metadata": {"name": format!("agency-{i:05}")},
        "spec": {
            "displayName": format!("Agency {i}"), "organization": "bench-province",
            "owners": [{"kind": "Group", "name": format!("agency-{i}:admins")}],
            "namespaces": [
                {"name": "prod", "quota": {"cpu": "4", "memory": "16Gi", "storage": "100Gi", "pods": 50}},
                {"name": "staging", "quota": {"cpu": "1", "memory": "4Gi", "storage": "20Gi", "pods": 10}}
            ],
            "billing": {"plan": "Reserved"}
        }
    }))?)
}

/// Peak resident memory of a process, from /proc (kB).
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// CPU time a process has used so far (user + system, all threads), from /proc.
fn cpu_time(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some(Duration::from_millis(ticks * 10))
}

/// kubesim's runtime: its threads are named so that their CPU can be told from the client's
/// (the applier's, the bench's polling) in the same process.
static SIM_RUNTIME: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
const SIM_THREADS: &str = "kubesim";

/// A fresh kubesim, served from its own runtime.
async fn start_sim() -> anyhow::Result<KubeSim> {
    let handle = SIM_RUNTIME
        .get()
        .context("kubesim's runtime is not running")?;
    Ok(handle
        .spawn(KubeSim::start_with(sim_config(), "127.0.0.1:0".parse()?))
        .await??)
}

/// CPU time kubesim's threads have used so far.
fn sim_threads_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let path = task.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim_end() == SIM_THREADS {
            let id = path.file_name()?.to_str()?.to_string();
            total += cpu_time(&format!("self/task/{id}")).unwrap_or_default();
        }
    }
    Some(total)
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct Operator {
    child: Child,
    metrics: String,
}

impl Operator {
    fn start(kubeconfig: &std::path::Path, extra: &[&str]) -> anyhow::Result<Self> {
        let port = free_port()?;
        let binary = env!("CARGO_BIN_EXE_govcloud-operator");
        // GOVCLOUD_BENCH_WRAP="heaptrack -o /tmp/op" runs the operator under a profiler.
        let wrap = std::env::var("GOVCLOUD_BENCH_WRAP").unwrap_or_default();
        let mut words = wrap.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(extra)
            .env("KUBECONFIG", kubeconfig)
            // GOVCLOUD_BENCH_LOG=<filter> keeps the operator's log in the temporary directory.
            .env(
                "RUST_LOG",
                std::env::var("GOVCLOUD_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stderr(Stdio::null())
            .stdout(match std::env::var_os("GOVCLOUD_BENCH_LOG") {
                Some(_) => Stdio::from(std::fs::File::create(
                    kubeconfig.with_file_name(format!("operator-{port}.log")),
                )?),
                None => Stdio::null(),
            })
            .spawn()
            .context("starting govcloud-operator")?;
        Ok(Self {
            child,
            metrics: format!("127.0.0.1:{port}"),
        })
    }

    /// One metric's value, scraped over plain HTTP (cheap, unlike listing every Tenant).
    fn metric(&self, name: &str) -> Option<u64> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&self.metrics).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).ok()?;
        let prefix = format!("{name} ");
        body.lines()
            .find(|l| l.starts_with(&prefix))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    }

    fn reconciles(&self) -> Option<u64> {
        self.metric("govcloud_operator_reconciles_total")
    }

    /// The operator's CPU time so far.
    fn cpu(&self) -> Option<Duration> {
        cpu_time(&self.child.id().to_string())
    }

    fn stop(mut self) -> Option<u64> {
        let peak = peak_rss_kb(self.child.id());
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        peak
    }
}

async fn ready_count(api: &Api<Tenant>) -> anyhow::Result<usize> {
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter(|t| {
            t.status.as_ref().is_some_and(|s| {
                s.phase == Some(Phase::Ready) && s.observed_generation == t.metadata.generation
            })
        })
        .count())
}

fn sim_config() -> Config {
    Config {
        history_limit: 200_000,
        ..Config::default()
    }
}

/// Applies one object as the operator does (server-side apply, its field manager, forced).
async fn apply<K>(api: &Api<K>, obj: &K) -> anyhow::Result<()>
where
    K: kube::Resource + serde::Serialize + serde::de::DeserializeOwned + Clone + std::fmt::Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &kube::api::PatchParams::apply(govcloud_operator::build::FIELD_MANAGER).force(),
        &kube::api::Patch::Apply(obj),
    )
    .await?;
    Ok(())
}

/// The reference: every object the operator would make for the tenants, applied once each with
/// the operator's concurrency (16 tenants at a time). Answers the time and the calls made.
async fn minimal_applier(n: usize) -> anyhow::Result<(Duration, u64, Option<Cpu>)> {
    use govcloud_operator::build::namespace::build_namespace;
    use govcloud_operator::build::network::build_network_policies;
    use govcloud_operator::build::quota::{build_limit_range, build_resource_quota};
    use govcloud_operator::build::rbac::{
        build_deployer_role_binding, build_deployer_service_account, build_owner_role_binding,
        build_tenant_cluster_role,
    };
    use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
    let sim = start_sim().await?;
    let client: Client = sim.client()?;
    let platform = govcloud_operator::build::Platform::default();
    // The Tenants exist (what is built is owned by them, and the collector removes what an
    // absent owner owns); creating them is not timed, as in the operator's run.
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Tenant::crd())
        .await?;
    let tenants_api: Api<Tenant> = Api::all(client.clone());
    let tenants: Vec<Tenant> = futures::stream::iter(0..n)
        .map(|i| {
            let api = tenants_api.clone();
            async move { anyhow::Ok(api.create(&PostParams::default(), &tenant(i)?).await?) }
        })
        .buffer_unordered(32)
        .try_collect()
        .await?;
    let before = sim.requests();
    let cpu_before = cpu_time("self").zip(sim_threads_cpu());
    let start = Instant::now();
    apply(
        &Api::<ClusterRole>::all(client.clone()),
        &build_tenant_cluster_role(&platform),
    )
    .await?;
    futures::stream::iter(tenants.iter())
        .map(|t| {
            let (client, platform) = (client.clone(), &platform);
            async move {
                for ns in &t.spec.namespaces {
                    let full = govcloud_tenant::names::namespace_name(
                        &t.metadata.name.clone().unwrap_or_default(),
                        &ns.name,
                    );
                    // Created, as the operator claims a namespace (it is never applied over
                    // someone else's).
                    Api::<Namespace>::all(client.clone())
                        .create(&PostParams::default(), &build_namespace(t, ns))
                        .await?;
                    apply(
                        &Api::<ServiceAccount>::namespaced(client.clone(), &full),
                        &build_deployer_service_account(t, ns),
                    )
                    .await?;
                    let rb = Api::<RoleBinding>::namespaced(client.clone(), &full);
                    apply(&rb, &build_owner_role_binding(t, ns, platform)).await?;
                    apply(&rb, &build_deployer_role_binding(t, ns, platform)).await?;
                    apply(
                        &Api::<ResourceQuota>::namespaced(client.clone(), &full),
                        &build_resource_quota(t, ns, platform),
                    )
                    .await?;
                    apply(
                        &Api::<LimitRange>::namespaced(client.clone(), &full),
                        &build_limit_range(t, ns),
                    )
                    .await?;
                    let np = Api::<NetworkPolicy>::namespaced(client.clone(), &full);
                    for p in build_network_policies(t, ns, &[], platform) {
                        apply(&np, &p).await?;
                    }
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let took = start.elapsed();
    let calls = sim.requests() - before;
    let cpu = cpu_time("self").zip(sim_threads_cpu()).zip(cpu_before).map(
        |((all, sim), (all0, sim0))| {
            let sim = sim.saturating_sub(sim0);
            Cpu {
                sim,
                client: all.saturating_sub(all0).saturating_sub(sim),
            }
        },
    );
    sim.shutdown().await;
    Ok((took, calls, cpu))
}

/// CPU used during a phase: kubesim's threads, and the rest of the bench process (the
/// applier, or the bench's polling).
#[derive(Clone, Copy)]
struct Cpu {
    sim: Duration,
    client: Duration,
}

impl std::fmt::Display for Cpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1?} (kubesim {:.1?}, the applier {:.1?})",
            self.sim + self.client,
            self.sim,
            self.client
        )
    }
}

/// One round of the operator: N tenants created on a fresh kubesim, then the operator started
/// on them cold; with `resyncs`, then the two no-change resyncs. Answers the cold convergence.
async fn operator_round(n: usize, resyncs: bool) -> anyhow::Result<Duration> {
    let ms = |d: Option<Duration>| d.map_or("?".to_string(), |d| format!("{:.1?}", d));
    let sim = start_sim().await?;
    let dir = std::env::temp_dir().join(format!("govcloud-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let client: Client = sim.client()?;
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Tenant::crd())
        .await?;
    let api: Api<Tenant> = Api::all(client.clone());
    let created = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &tenant(i)?)
                    .await
                    .map(|_| ())
                    .map_err(anyhow::Error::from)
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    println!(
        "{n} tenants: created {n} Tenant objects in {:.1?}",
        created.elapsed()
    );

    // Cold start: the operator starts with every tenant waiting.
    let calls_before = sim.requests();
    let sim_cpu_before = cpu_time("self");
    let sim_only_before = sim_threads_cpu();
    let op = Operator::start(&kubeconfig, &[])?;
    let start = Instant::now();
    // Poll the operator's own gauge; confirm with one list at the end.
    loop {
        let ready = op
            .metric("govcloud_operator_tenants{phase=\"Ready\"}")
            .unwrap_or(0);
        if ready as usize >= n && ready_count(&api).await? == n {
            break;
        }
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("only {ready} of {n} tenants Ready after an hour");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let to_ready = start.elapsed();
    let reconciles = op.reconciles().unwrap_or(0);
    // The bench's own polling (a metrics scrape is not a call; one list per loop is).
    let calls = sim.requests() - calls_before;
    let sim_cpu = cpu_time("self")
        .zip(sim_cpu_before)
        .map(|(a, b)| a.saturating_sub(b));
    let sim_only = sim_threads_cpu()
        .zip(sim_only_before)
        .map(|(a, b)| a.saturating_sub(b));
    let operator_cpu = op.cpu();
    let peak = op.stop();
    println!(
        "{n} tenants: CPU during the cold start: kubesim {}, the bench's polling {}, the operator {}",
        ms(sim_only),
        ms(sim_cpu.zip(sim_only).map(|(a, b)| a.saturating_sub(b))),
        ms(operator_cpu),
    );
    println!(
        "{n} tenants: all {} namespaces Ready {to_ready:.1?} after a cold start ({:.0} tenants/s, {reconciles} reconciles = {:.2} per tenant, {:.1} calls per tenant); operator peak RSS {} MiB",
        2 * n,
        n as f64 / to_ready.as_secs_f64(),
        reconciles as f64 / n as f64,
        calls as f64 / n as f64,
        peak.map_or("?".to_string(), |kb| (kb / 1024).to_string()),
    );

    if !resyncs {
        sim.shutdown().await;
        if std::env::var_os("GOVCLOUD_BENCH_LOG").is_none() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        return Ok(to_ready);
    }
    // A resync pass in which nothing changed: a new operator reconciles every tenant once; no
    // object may change (the cluster's resourceVersion counts every write).
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rv_before = sim.resource_version();
    let resync_calls_before = sim.requests();
    let resync_sim_cpu_before = cpu_time("self");
    // The same operator then resyncs in its own time, its view of the cluster in hand: the
    // periodic resync of a running operator. Its interval keeps the two passes apart.
    let resync_after = (to_ready.as_secs() + 10).to_string();
    let op = Operator::start(&kubeconfig, &["--resync-seconds", &resync_after])?;
    let start = Instant::now();
    while op.reconciles().unwrap_or(0) < n as u64 {
        if start.elapsed() > Duration::from_secs(3600) {
            bail!("the resync pass did not finish in an hour");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let pass = start.elapsed();
    let resync_calls = sim.requests() - resync_calls_before;
    let resync_cpu = cpu_time("self")
        .zip(resync_sim_cpu_before)
        .map(|(a, b)| a.saturating_sub(b))
        .zip(op.cpu())
        .map(|(a, b)| a + b);
    let cold_cpu = sim_cpu.zip(operator_cpu).map(|(a, b)| a + b);
    // The periodic pass.
    let (rv_running, calls_running) = (sim.resource_version(), sim.requests());
    let cpu_running = cpu_time("self").zip(op.cpu()).map(|(a, b)| a + b);
    let running_started = Instant::now();
    while op.reconciles().unwrap_or(0) < 2 * n as u64 {
        if running_started.elapsed() > Duration::from_secs(3600) {
            bail!("the periodic resync did not finish in an hour");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running_cpu = cpu_time("self")
        .zip(op.cpu())
        .map(|(a, b)| a + b)
        .zip(cpu_running)
        .map(|(a, b)| a.saturating_sub(b));
    let peak = op.stop();
    println!(
        "{n} tenants: periodic resync of a running operator / cold convergence = {} in CPU (operator and kubesim, idle watches and lease included); {} calls ({:.3} per tenant), {} writes",
        running_cpu
            .zip(cold_cpu)
            .map_or("?".to_string(), |(r, c)| format!(
                "{:.3}",
                r.as_secs_f64() / c.as_secs_f64()
            )),
        sim.requests() - calls_running,
        (sim.requests() - calls_running) as f64 / n as f64,
        sim.resource_version() - rv_running,
    );
    println!(
        "{n} tenants: no-change resync / cold convergence = {:.2} in time (a fresh process: it lists everything first), {} in CPU (operator and kubesim); {resync_calls} calls to the cluster in all ({:.2} per tenant)",
        pass.as_secs_f64() / to_ready.as_secs_f64(),
        resync_cpu
            .zip(cold_cpu)
            .map_or("?".to_string(), |(r, c)| format!(
                "{:.2}",
                r.as_secs_f64() / c.as_secs_f64()
            )),
        resync_calls as f64 / n as f64,
    );
    println!(
        "{n} tenants: resync pass with nothing changed took {pass:.1?} ({:.0} tenants/s, {:.2} ms per tenant), {} writes to the cluster (lease renewals included); operator peak RSS {} MiB",
        n as f64 / pass.as_secs_f64(),
        pass.as_secs_f64() * 1000.0 / n as f64,
        sim.resource_version() - rv_before,
        peak.map_or("?".to_string(), |kb| (kb / 1024).to_string()),
    );
    sim.shutdown().await;
    if std::env::var_os("GOVCLOUD_BENCH_LOG").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(to_ready)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    match v.len() {
        0 => Duration::ZERO,
        l if l % 2 == 1 => v[l / 2],
        l => (v[l / 2 - 1] + v[l / 2]) / 2,
    }
}

async fn run(n: usize, rounds: usize) -> anyhow::Result<()> {
    let (reference, reference_calls, reference_cpu) = minimal_applier(n).await?;
    println!(
        "{n} tenants: the minimal applier wrote every object in {reference:.1?} ({:.1} calls per tenant; CPU {})",
        reference_calls as f64 / n as f64,
        reference_cpu.map_or("?".to_string(), |c| c.to_string()),
    );
    // The machine is noisy (the same 10,000 creations have taken 4.6 s and 18.4 s in one
    // hour): the operator and the applier take turns, the applier first and last, and the
    // ratio is of the medians; each round's ratio is to the mean of the applier runs around it.
    let mut appliers = vec![reference];
    let mut colds = Vec::new();
    for round in 0..rounds {
        let cold = operator_round(n, round == 0).await?;
        let (again, _, again_cpu) = minimal_applier(n).await?;
        println!(
            "{n} tenants: round {}: cold convergence {cold:.1?}, then the minimal applier {again:.1?} (CPU {}): {:.2} to the mean of the applier runs around it",
            round + 1,
            again_cpu.map_or("?".to_string(), |c| c.to_string()),
            cold.as_secs_f64() / ((appliers[round] + again) / 2).as_secs_f64(),
        );
        appliers.push(again);
        colds.push(cold);
    }
    let (cold, applier) = (median(colds.clone()), median(appliers.clone()));
    println!(
        "{n} tenants: cold convergence / minimal applier = {:.2} (medians: {cold:.1?} of {} operator runs, {applier:.1?} of {} applier runs; operator {:.1?}, applier {:.1?})",
        cold.as_secs_f64() / applier.as_secs_f64(),
        colds.len(),
        appliers.len(),
        colds,
        appliers,
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; sizes are the other arguments.
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![1_000, 10_000]
    } else {
        sizes
    };
    // GOVCLOUD_BENCH_ROUNDS: how many times the operator's cold start is timed (2 by default).
    let rounds = std::env::var("GOVCLOUD_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| r > 0)
        .unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // kubesim on a runtime of its own (as many threads as the bench's), so its CPU is told apart.
    let sim_rt = tokio::runtime::Builder::new_multi_thread()
        .thread_name(SIM_THREADS)
        .enable_all()
        .build()?;
    let _ = SIM_RUNTIME.set(sim_rt.handle().clone());
    for n in sizes {
        rt.block_on(run(n, rounds))?;
    }
    Ok(())
}
