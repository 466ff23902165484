//! Planning (pure, no I/O): a parsed Dockerfile, the build args and the target become stages
//! with their bases resolved to an image reference, an earlier stage or scratch, the set of
//! stages the target needs in dependency order, and the global (meta) ARG values — following
//! BuildKit's dockerfile2llb (buildDispatchStates, buildMetaArgs, toCommand, resolveStages).

use std::collections::{BTreeMap, BTreeSet};

use super::dockerfile::{Command, Dockerfile, Instruction};
use super::shell::Lexer;
use crate::oci::Platform;

/// An ordered environment where setting a key replaces it in place (BuildKit's EnvList).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EnvList(Vec<(String, String)>);

impl EnvList {
    pub fn set(&mut self, key: &str, value: &str) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.0.push((key.to_string(), value.to_string())),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = &(String, String)> {
        self.0.iter()
    }

    /// A lookup closure for the shell lexer.
    pub fn lookup(&self) -> impl Fn(&str) -> Option<String> + '_ {
        |k| self.get(k).map(str::to_string)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference (registry or `oci-layout://DIR[:REF]`), expanded.
    Image(String),
    /// A named build context (`--build-context NAME=...`).
    Named(String),
}

#[derive(Clone, Debug)]
pub struct Stage {
    pub index: usize,
    /// The `AS` name, lower-cased as BuildKit matches it.
    pub name: Option<String>,
    pub base: Base,
    /// `FROM --platform`, expanded.
    pub platform: Option<Platform>,
    pub from_line: usize,
    pub instructions: Vec<Instruction>,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub stages: Vec<Stage>,
    pub target: usize,
    /// Stages to build, dependencies first, the target last.
    pub order: Vec<usize>,
    /// Meta ARGs (before the first FROM) and the predefined platform args, as values.
    pub global_args: EnvList,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("Dockerfile:{line}: {message}")]
pub struct PlanError {
    pub line: usize,
    pub message: String,
}

fn err(line: usize, message: impl Into<String>) -> PlanError {
    PlanError {
        line,
        message: message.into(),
    }
}

/// The predefined platform ARGs (BuildKit's defaultArgs), overridable by build args.
pub fn default_args(
    build: &Platform,
    target: &Platform,
    target_stage: &str,
    overrides: &BTreeMap<String, String>,
) -> EnvList {
    let mut env = EnvList::default();
    let pairs = [
        ("BUILDPLATFORM", build.to_string()),
        ("BUILDOS", build.os.clone()),
        ("BUILDOSVERSION", String::new()),
        ("BUILDARCH", build.architecture.clone()),
        ("BUILDVARIANT", build.variant.clone().unwrap_or_default()),
        ("TARGETPLATFORM", target.to_string()),
        ("TARGETOS", target.os.clone()),
        ("TARGETOSVERSION", String::new()),
        ("TARGETARCH", target.architecture.clone()),
        ("TARGETVARIANT", target.variant.clone().unwrap_or_default()),
        ("TARGETSTAGE", target_stage.to_string()),
    ];
    for (k, v) in pairs {
        env.set(k, overrides.get(k).map_or(v.as_str(), String::as_str));
    }
    env
}

/// Plans the build for the `platform` target on a `build_platform` machine (stages `FROM
/// --platform=$BUILDPLATFORM` run there, natively). `named` are the names of `--build-context`s: they replace a stage of that name, and a base
/// image of that name (BuildKit's named contexts).
pub fn plan(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
    build_platform: &Platform,
    platform: &Platform,
    named: &BTreeSet<String>,
) -> Result<Plan, PlanError> {
    let lexer = Lexer::new(dockerfile.escape);
    // Split into the meta ARGs and the stages.
    let mut meta: Vec<&Instruction> = Vec::new();
    let mut raw_stages: Vec<(&Instruction, Vec<Instruction>)> = Vec::new();
    for instruction in &dockerfile.instructions {
        match (&instruction.command, raw_stages.last_mut()) {
            (Command::From { .. }, _) => raw_stages.push((instruction, Vec::new())),
            (_, Some((_, body))) => body.push(instruction.clone()),
            (Command::Arg(_), None) => meta.push(instruction),
            (_, None) => {
                return Err(err(
                    instruction.line,
                    "no build stage in current context: the first instruction must be FROM (only ARG may come before it)",
                ));
            }
        }
    }
    if raw_stages.is_empty() {
        return Err(err(1, "the Dockerfile has no FROM instruction"));
    }
    let last_name = raw_stages
        .last()
        .and_then(|(from, _)| match &from.command {
            Command::From { name, .. } => name.clone(),
            _ => None,
        })
        .unwrap_or_default();
    let target_stage = target.map(str::to_string).unwrap_or(last_name);
    let mut global = default_args(build_platform, platform, &target_stage, build_args);
    for instruction in meta {
        let Command::Arg(args) = &instruction.command else {
            continue;
        };
        for (key, default) in args {
            let value = match build_args.get(key) {
                Some(v) => Some(v.clone()),
                None => match default {
                    Some(d) => Some(
                        lexer
                            .process_word(d, &global.lookup())
                            .map_err(|e| err(instruction.line, e.to_string()))?,
                    ),
                    None => None,
                },
            };
            if let Some(v) = value {
                global.set(key, &v);
            }
        }
    }

    let mut stages: Vec<Stage> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (index, (from, body)) in raw_stages.into_iter().enumerate() {
        let Command::From {
            image,
            name,
            platform: from_platform,
        } = &from.command
        else {
            unreachable!("stages start with FROM");
        };
        let expanded = lexer
            .process_word(image, &global.lookup())
            .map_err(|e| err(from.line, e.to_string()))?;
        if expanded.is_empty() {
            return Err(err(
                from.line,
                format!("base name ({image}) should not be blank"),
            ));
        }
        let stage_platform = match from_platform {
            Some(p) => {
                let value = lexer
                    .process_word(p, &global.lookup())
                    .map_err(|e| err(from.line, e.to_string()))?;
                if value.is_empty() {
                    return Err(err(
                        from.line,
                        format!("empty platform value from expression {p}"),
                    ));
                }
                Some(Platform::parse(&value).map_err(|e| err(from.line, e))?)
            }
            None => None,
        };
        let name = name.as_ref().map(|n| n.to_ascii_lowercase());
        let replaced = name.as_ref().filter(|n| named.contains(*n));
        let base = if let Some(n) = replaced {
            Base::Named(n.clone())
        } else if expanded.eq_ignore_ascii_case("scratch") {
            Base::Scratch
        } else if let Some(&i) = names.get(&expanded.to_ascii_lowercase()) {
            Base::Stage(i)
        } else if named.contains(&expanded) {
            Base::Named(expanded)
        } else {
            Base::Image(expanded)
        };
        // A stage replaced by a named context is that context: its own instructions never run.
        let body = if replaced.is_some() { Vec::new() } else { body };
        if let Some(n) = &name {
            if names.contains_key(n) {
                return Err(err(from.line, format!("duplicate stage name {n:?}")));
            }
            names.insert(n.clone(), index);
        }
        stages.push(Stage {
            index,
            name,
            base,
            platform: stage_platform,
            from_line: from.line,
            instructions: body,
        });
    }

    let target_index = match target {
        None => stages.len() - 1,
        Some(t) => *names.get(&t.to_ascii_lowercase()).ok_or_else(|| {
            let known: Vec<&str> = names.keys().map(String::as_str).collect();
            err(
                stages.last().map_or(1, |s| s.from_line),
                format!(
                    "target stage {t:?} could not be found (stages: {})",
                    if known.is_empty() {
                        "none named".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        })?,
    };

    // Dependencies: the base stage, COPY --from and RUN --mount=from= stages.
    let mut deps: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); stages.len()];
    for stage in &stages {
        if let Base::Stage(i) = stage.base {
            deps[stage.index].insert(i);
        }
        for instruction in &stage.instructions {
            for from in other_sources(instruction) {
                if let Some(i) = stage_ref(&from, &names, stages.len(), instruction.line)? {
                    deps[stage.index].insert(i);
                }
            }
        }
    }
    let order = topological(&deps, target_index, &stages)?;
    Ok(Plan {
        stages,
        target: target_index,
        order,
        global_args: global,
    })
}

/// The stages or images an instruction reads: COPY's `--from`, RUN's `--mount=from=`
/// (variables are refused there at parse time, so the raw value is the name).
pub fn other_sources(instruction: &Instruction) -> Vec<String> {
    match &instruction.command {
        Command::Copy(args) => args.from.iter().cloned().collect(),
        Command::Run { mounts, .. } => mounts
            .iter()
            .flat_map(|m| super::dockerfile::csv_fields(m).unwrap_or_default())
            .filter_map(|field| {
                let (key, value) = field.split_once('=')?;
                key.eq_ignore_ascii_case("from").then(|| value.to_string())
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// Which stage a `--from` names: a stage name, a stage index, or None for an image.
pub fn stage_ref(
    from: &str,
    names: &BTreeMap<String, usize>,
    count: usize,
    line: usize,
) -> Result<Option<usize>, PlanError> {
    if from.contains('$') {
        return Err(err(
            line,
            "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround",
        ));
    }
    if let Ok(index) = from.parse::<usize>() {
        return if index < count {
            Ok(Some(index))
        } else {
            Err(err(line, format!("invalid stage index {index}")))
        };
    }
    Ok(names.get(&from.to_ascii_lowercase()).copied())
}

/// Dependencies first, each stage once; a cycle is an error naming a stage on it.
fn topological(
    deps: &[BTreeSet<usize>],
    target: usize,
    stages: &[Stage],
) -> Result<Vec<usize>, PlanError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks = vec![Mark::New; deps.len()];
    let mut order = Vec::new();
    // Iterative DFS: (stage, next dependency position).
    let mut stack = vec![(target, 0usize)];
    marks[target] = Mark::Active;
    while let Some((stage, pos)) = stack.pop() {
        let next = deps[stage].iter().nth(pos).copied();
        match next {
            Some(dep) => {
                stack.push((stage, pos + 1));
                match marks[dep] {
                    Mark::Done => {}
                    Mark::Active => {
                        let s = &stages[dep];
                        let name = s.name.clone().unwrap_or_else(|| format!("stage-{dep}"));
                        return Err(err(
                            s.from_line,
                            format!("circular dependency detected on stage: {name}"),
                        ));
                    }
                    Mark::New => {
                        marks[dep] = Mark::Active;
                        stack.push((dep, 0));
                    }
                }
            }
            None => {
                marks[stage] = Mark::Done;
                order.push(stage);
            }
        }
    }
    Ok(order)
}
