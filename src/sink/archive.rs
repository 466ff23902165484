//! docker-archive output: one image as `docker save` writes it (`manifest.json`,
//! `repositories`, the config as `<hex>.json`, uncompressed layers as `<diff_id hex>.tar`),
//! loadable by `docker load` and readable by skopeo. Written to a temporary file and renamed.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;

use crate::digest::{Hasher, error_from_reader};
use crate::error::{Error, Result};
use crate::oci::Descriptor;
use crate::reference::{Digest, RegistryRef};
use crate::registry::ByteStream;

/// One image to write: its config and, in order, its layers with their diff_ids.
pub struct ArchiveImage {
    pub config: Bytes,
    pub config_digest: Digest,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    pub name: Option<RegistryRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ManifestEntry {
    config: String,
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// Writes `image` to `path`; `open_layer` gives each layer's (verified) compressed bytes.
pub async fn write<F, Fut>(path: &Path, image: ArchiveImage, open_layer: F) -> Result<()>
where
    F: Fn(Descriptor) -> Fut,
    Fut: std::future::Future<Output = Result<ByteStream>>,
{
    if image.layers.len() != image.diff_ids.len() {
        return Err(Error::malformed(
            format!("image config {}", image.config_digest),
            format!(
                "{} layers but {} diff_ids",
                image.layers.len(),
                image.diff_ids.len()
            ),
        ));
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
    let work = tempfile::Builder::new()
        .prefix(".hoist-archive-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io(&parent, e))?;

    let mut layer_files = Vec::new();
    for (layer, diff_id) in image.layers.iter().zip(&image.diff_ids) {
        let file = work.path().join(format!("{}.tar", diff_id.hex()));
        if !layer_files.contains(&file) {
            let stream = open_layer(layer.clone()).await?;
            uncompress_layer(stream, layer.clone(), diff_id.clone(), file.clone()).await?;
        }
        layer_files.push(file);
    }

    let config_name = format!("{}.json", image.config_digest.hex());
    let repo_tags: Vec<String> = image
        .name
        .iter()
        .map(|n| format!("{}:{}", familiar_name(n), n.tag_or_latest()))
        .collect();
    let manifest = vec![ManifestEntry {
        config: config_name.clone(),
        repo_tags,
        layers: image
            .diff_ids
            .iter()
            .map(|d| format!("{}.tar", d.hex()))
            .collect(),
    }];
    let repositories = image.name.as_ref().map(|n| {
        let top = image
            .diff_ids
            .last()
            .map(|d| d.hex().to_string())
            .unwrap_or_default();
        serde_json::json!({ familiar_name(n): { n.tag_or_latest(): top } })
    });
    let path = path.to_path_buf();
    let config = image.config.clone();
    tokio::task::spawn_blocking(move || {
        assemble(
            &path,
            work.path(),
            &config_name,
            &config,
            &layer_files,
            &manifest,
            repositories,
        )
    })
    .await
    .map_err(|e| Error::Internal(format!("archive writer panicked: {e}")))?
}

/// The name `docker load` shows: Docker Hub images without `docker.io/` and `library/`.
fn familiar_name(name: &RegistryRef) -> String {
    if name.registry == crate::reference::DOCKER_HUB {
        name.repository
            .strip_prefix("library/")
            .unwrap_or(&name.repository)
            .to_string()
    } else {
        name.repository_name()
    }
}

/// Decompresses one layer into `file`, checking the result against its diff_id.
async fn uncompress_layer(
    stream: ByteStream,
    layer: Descriptor,
    diff_id: Digest,
    file: PathBuf,
) -> Result<()> {
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    tokio::task::spawn_blocking(move || {
        let what = format!("layer {}", layer.digest);
        let mut decoded = crate::oci::layer_tar_reader(&layer.media_type, reader, &what)?;
        let mut out = std::fs::File::create(&file).map_err(|e| Error::io(&file, e))?;
        let mut hasher = Hasher::new(diff_id.algorithm())?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = match decoded.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => return Err(error_from_reader(e, &what, "cannot decompress")),
            };
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| Error::io(&file, e))?;
        }
        let actual = hasher.finish();
        if actual != diff_id {
            return Err(Error::DigestMismatch {
                what: format!("uncompressed {what} (diff_id)"),
                expected: diff_id.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Internal(format!("layer decompression panicked: {e}")))?
}

fn assemble(
    path: &Path,
    work: &Path,
    config_name: &str,
    config: &[u8],
    layer_files: &[PathBuf],
    manifest: &[ManifestEntry],
    repositories: Option<serde_json::Value>,
) -> Result<()> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".hoist-tmp-")
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, e))?;
    let io = |e| Error::io(tmp.path(), e);
    {
        let mut builder = tar::Builder::new(std::io::BufWriter::new(tmp.as_file()));
        let mut add = |name: &str, size: u64, data: &mut dyn Read| -> std::io::Result<()> {
            let mut header = tar::Header::new_ustar();
            header.set_size(size);
            header.set_mode(0o644);
            header.set_mtime(0);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, name, data)
        };
        add(config_name, config.len() as u64, &mut &config[..]).map_err(io)?;
        let mut added = Vec::new();
        for file in layer_files {
            if added.contains(&file) {
                continue;
            }
            added.push(file);
            let name = file
                .strip_prefix(work)
                .expect("layer files live in the work dir")
                .to_string_lossy()
                .to_string();
            let mut f = std::fs::File::open(file).map_err(|e| Error::io(file, e))?;
            let size = f.metadata().map_err(|e| Error::io(file, e))?.len();
            add(&name, size, &mut f).map_err(io)?;
        }
        let manifest_json = serde_json::to_vec(manifest).expect("manifest serialises");
        add(
            "manifest.json",
            manifest_json.len() as u64,
            &mut &manifest_json[..],
        )
        .map_err(io)?;
        if let Some(repositories) = repositories {
            let json = serde_json::to_vec(&repositories).expect("repositories serialises");
            add("repositories", json.len() as u64, &mut &json[..]).map_err(io)?;
        }
        let mut out = builder.into_inner().map_err(io)?;
        out.flush().map_err(io)?;
    }
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}
