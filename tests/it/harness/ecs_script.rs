//! A recorded-response ECS endpoint for rollout outcomes, which moto cannot give (it keeps
//! every deployment IN_PROGRESS): every call goes to moto, except that once the deploy's
//! UpdateService has passed, DescribeServices answers follow a script of the new deployment's
//! rollout states (then a rollback's UpdateService makes its revision PRIMARY and COMPLETED).
//! Each service (cluster/service as named in the request) follows its own copy of the script.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::runtime;

/// What a DescribeServices answer says of the new deployment.
#[derive(Clone, Copy, Debug)]
pub enum Step {
    InProgress,
    Completed,
    /// FAILED, and the circuit breaker made the previous revision PRIMARY again.
    FailedRolledBack,
}

#[derive(Default)]
struct Script {
    steps: VecDeque<Step>,
    last: Option<Step>,
    /// The service's revision before the deploy (from the first DescribeServices seen).
    previous: Option<String>,
    /// Revisions UpdateService was asked for, in order.
    updates: Vec<String>,
}

/// The script of each service, started from `steps` when the service is first seen.
struct Scripts {
    steps: Vec<Step>,
    by_service: HashMap<String, Script>,
    /// Revisions UpdateService was asked for, in order, across services.
    updates: Vec<String>,
}

impl Scripts {
    fn of(&mut self, service: String) -> &mut Script {
        let steps = &self.steps;
        self.by_service.entry(service).or_insert_with(|| Script {
            steps: steps.iter().copied().collect(),
            ..Default::default()
        })
    }
}

pub struct ScriptedEcs {
    pub addr: SocketAddr,
    scripts: Arc<Mutex<Scripts>>,
}

impl ScriptedEcs {
    pub fn start(moto_url: &str, steps: &[Step]) -> ScriptedEcs {
        let scripts = Arc::new(Mutex::new(Scripts {
            steps: steps.to_vec(),
            by_service: HashMap::new(),
            updates: Vec::new(),
        }));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind scripted ECS");
        let addr = listener.local_addr().unwrap();
        listener.set_nonblocking(true).unwrap();
        let _guard = runtime().enter();
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let moto = moto_url.to_string();
        let shared = scripts.clone();
        runtime().spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (scripts, moto) = (shared.clone(), moto.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (scripts, moto) = (scripts.clone(), moto.clone());
                        async move { Ok::<_, Infallible>(handle(&scripts, &moto, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        ScriptedEcs { addr, scripts }
    }

    /// The revisions UpdateService was asked for (the deploy's, then a rollback's), across
    /// services.
    pub fn updates(&self) -> Vec<String> {
        self.scripts.lock().unwrap().updates.clone()
    }
}

async fn handle(
    scripts: &Mutex<Scripts>,
    moto: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let mut forward = reqwest::Client::new().post(moto).body(body.clone());
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.send().await.expect("moto answers");
    let status = answer.status();
    let mut bytes = answer.bytes().await.unwrap_or_default();
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let cluster = request["cluster"].as_str().unwrap_or("default");
    if target.ends_with(".UpdateService") && status.is_success() {
        let revision = request["taskDefinition"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let full = answer["service"]["taskDefinition"]
            .as_str()
            .unwrap_or(&revision)
            .to_string();
        let service = format!(
            "{cluster}/{}",
            request["service"].as_str().unwrap_or_default()
        );
        let mut scripts = scripts.lock().unwrap();
        scripts.updates.push(full.clone());
        scripts.of(service).updates.push(full);
    }
    if target.ends_with(".DescribeServices") && status.is_success() {
        let service = format!(
            "{cluster}/{}",
            request["services"][0].as_str().unwrap_or_default()
        );
        let mut answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        rewrite(scripts.lock().unwrap().of(service), &mut answer);
        bytes = Bytes::from(answer.to_string());
    }
    Response::builder()
        .status(status.as_u16())
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(bytes))
        .unwrap()
}

fn deployment(id: &str, status: &str, revision: &str, rollout: &str, reason: &str) -> Value {
    json!({
        "id": id, "status": status, "taskDefinition": revision,
        "desiredCount": 1, "pendingCount": 0, "runningCount": 1, "failedTasks": 0,
        "rolloutState": rollout, "rolloutStateReason": reason
    })
}

fn rewrite(script: &mut Script, answer: &mut Value) {
    let Some(service) = answer["services"].get_mut(0) else {
        return;
    };
    if script.updates.is_empty() {
        // Before the deploy: remember the running revision, and show a finished rollout.
        let current = service["taskDefinition"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        script.previous.get_or_insert(current.clone());
        service["deployments"] = json!([deployment(
            "ecs-svc/old",
            "PRIMARY",
            &current,
            "COMPLETED",
            ""
        )]);
        return;
    }
    let previous = script.previous.clone().unwrap_or_default();
    let new = script.updates[0].clone();
    if let Some(back) = script.updates.get(1) {
        // Our rollback: its revision is PRIMARY and done.
        service["deployments"] =
            json!([deployment("ecs-svc/back", "PRIMARY", back, "COMPLETED", "")]);
        service["taskDefinition"] = json!(back);
        return;
    }
    let step = script
        .steps
        .pop_front()
        .or(script.last)
        .unwrap_or(Step::InProgress);
    script.last = Some(step);
    let (deployments, events) = match step {
        Step::InProgress => (
            json!([
                deployment(
                    "ecs-svc/new",
                    "PRIMARY",
                    &new,
                    "IN_PROGRESS",
                    "ECS deployment in progress."
                ),
                deployment("ecs-svc/old", "ACTIVE", &previous, "COMPLETED", ""),
            ]),
            json!([{"id": "e1", "createdAt": 1.0, "message": "(service api) has started 1 tasks"}]),
        ),
        Step::Completed => (
            json!([deployment(
                "ecs-svc/new",
                "PRIMARY",
                &new,
                "COMPLETED",
                "ECS deployment completed."
            )]),
            json!([
                {"id": "e2", "createdAt": 2.0, "message": "(service api) has reached a steady state."},
                {"id": "e1", "createdAt": 1.0, "message": "(service api) has started 1 tasks"}
            ]),
        ),
        Step::FailedRolledBack => (
            json!([
                deployment(
                    "ecs-svc/old",
                    "PRIMARY",
                    &previous,
                    "IN_PROGRESS",
                    "ECS deployment circuit breaker: rolling back to the previous deployment."
                ),
                deployment(
                    "ecs-svc/new",
                    "ACTIVE",
                    &new,
                    "FAILED",
                    "ECS deployment circuit breaker: tasks failed to start."
                ),
            ]),
            json!([
                {"id": "e3", "createdAt": 3.0, "message": "(service api) deployment failed: tasks failed to start."},
                {"id": "e1", "createdAt": 1.0, "message": "(service api) has started 1 tasks"}
            ]),
        ),
    };
    service["deployments"] = deployments;
    service["events"] = events;
}
