//! The local build cache under `HOIST_CACHE_DIR`:
//! - layers, content-addressed: a layer's key is the digest of exactly what its tar would hold
//!   (paths, types, modes, owners, clamped mtimes, link targets and content digests) plus the
//!   compression, so a step whose result is unchanged reuses its compressed blob and nothing
//!   is compressed again;
//! - a stat cache per build context (see `statcache`), so an unchanged context is walked, not
//!   read;
//! - base path indexes (see `baseindex`).
//!
//! Everything is written to a temporary file and renamed, so concurrent builds sharing the
//! directory and builds killed half-way never leave a partial entry under its final name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use super::fsview::{Content, Entry, Kind, LocalFile};
use super::layer::BuiltLayer;
use super::statcache::{FileStamp, StatCache};
use crate::compress::Codec;
use crate::digest::Hasher;
use crate::error::{Error, Result};
use crate::fsutil::write_cache_entry;
use crate::oci::Descriptor;
use crate::reference::Digest;
use crate::source::Source;

/// Bump when the layer format (tar headers, compression blocks) changes.
const LAYER_FORMAT: &str = "hoist-layer-v1";

/// What the cache saved and what it cost, for `--json` and tests.
#[derive(Debug, Default, Serialize)]
pub struct CacheStats {
    /// Context files whose content was read to hash it.
    pub files_hashed: AtomicU64,
    /// Context files whose hash came from the stat cache.
    pub files_unchanged: AtomicU64,
    pub layers_reused: AtomicU64,
    pub layers_built: AtomicU64,
}

impl CacheStats {
    /// Adds another build's counts (the platforms of one multi-platform build).
    pub fn add(&self, other: &CacheStats) {
        use std::sync::atomic::Ordering::Relaxed;
        for (mine, theirs) in [
            (&self.files_hashed, &other.files_hashed),
            (&self.files_unchanged, &other.files_unchanged),
            (&self.layers_reused, &other.layers_reused),
            (&self.layers_built, &other.layers_built),
        ] {
            mine.fetch_add(theirs.load(Relaxed), Relaxed);
        }
    }
}

/// `layers/<key>.json`: the layer a step's key gave.
#[derive(Serialize, Deserialize)]
pub(crate) struct CachedLayer {
    pub(crate) descriptor: Descriptor,
    pub(crate) diff_id: Digest,
}

impl CachedLayer {
    /// The record at `path`, if it parses.
    pub(crate) fn read(path: &Path) -> Option<CachedLayer> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Its blob in the cache under `root`, if there at the recorded size: a blob missing
    /// or of another size (pruned, damaged) makes the record stale, never used.
    pub(crate) fn blob(&self, root: &Path) -> Option<PathBuf> {
        let path = root
            .join("blobs")
            .join("sha256")
            .join(self.descriptor.digest.hex());
        (std::fs::metadata(&path).ok()?.len() == self.descriptor.size).then_some(path)
    }
}

/// A cached layer: on local disk, or in a registry or layout imported with `--cache-from`.
pub enum Hit {
    Local(BuiltLayer),
    Remote {
        descriptor: Descriptor,
        diff_id: Digest,
        source: Arc<Source>,
    },
}

/// A layer imported from a `--cache-from` reference.
#[derive(Clone)]
pub struct RemoteLayer {
    pub descriptor: Descriptor,
    pub diff_id: Digest,
    pub source: Arc<Source>,
}

pub struct Cache {
    root: Option<PathBuf>,
    /// Keys → layers from `--cache-from` (the first reference that has a key wins).
    remote: Mutex<HashMap<Digest, RemoteLayer>>,
    /// The build context (canonical): only files under it are remembered in the stat cache;
    /// files a build unpacks into its work directory are hashed but not recorded.
    context: Option<PathBuf>,
    /// `--no-cache`: results are still stored, never reused.
    reuse: bool,
    /// The context's stat cache file, and the cache once read.
    stat_file: Option<PathBuf>,
    stat: Mutex<StatCache>,
    /// The stat cache being read (on a thread from `open`, while the build resolves its
    /// bases), until first needed: see [`Cache::stat`].
    stat_loading: Mutex<Option<std::thread::JoinHandle<StatCache>>>,
    /// The stat cache being written (see [`Cache::save`]).
    saving: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Held while the cache is in use: `cache verify` and `cache prune` wait for it.
    _in_use: Option<crate::fsutil::FileLock>,
    pub stats: CacheStats,
}

impl Cache {
    /// A cache in `root` (None: no cache at all), for a build of `context`; `waiting` is called
    /// if the build must wait for `cache verify` or `cache prune` to finish first.
    pub fn open(root: Option<&Path>, reuse: bool, context: &Path, waiting: impl FnOnce()) -> Self {
        let in_use = root.and_then(|root| super::cache_admin::lock_for_build(root, waiting));
        let context = std::fs::canonicalize(context).ok();
        let stat_file = root.zip(context.as_deref()).map(|(root, context)| {
            let name = Digest::sha256_of(context.as_os_str().as_encoded_bytes());
            root.join("local")
                .join("stat")
                .join(format!("{}.tsv", &name.hex()[..32]))
        });
        let stat_loading = stat_file.clone().map(|file| {
            std::thread::spawn(move || {
                std::fs::read_to_string(file)
                    .map(StatCache::parse)
                    .unwrap_or_default()
            })
        });
        Cache {
            root: root.map(Path::to_path_buf),
            remote: Mutex::new(HashMap::new()),
            context,
            reuse,
            stat_file,
            stat: Mutex::new(StatCache::default()),
            stat_loading: Mutex::new(stat_loading),
            saving: Mutex::new(None),
            _in_use: in_use,
            stats: CacheStats::default(),
        }
    }

    /// The stat cache, once read.
    fn stat(&self) -> std::sync::MutexGuard<'_, StatCache> {
        let mut stat = self.stat.lock().expect("stat cache lock");
        if let Some(loading) = self.stat_loading.lock().expect("stat load lock").take() {
            *stat = loading.join().unwrap_or_default();
        }
        stat
    }

    /// Where layers are written: the cache's blob store, else `fallback` (a build's work dir).
    pub fn blob_dir(&self, fallback: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join("blobs").join("sha256"),
            None => fallback.to_path_buf(),
        }
    }

    /// The content digest of a local file, from the stat cache when the file is unchanged.
    pub fn file_digest(&self, file: &LocalFile) -> Result<Digest> {
        let path = &file.path;
        let stamp = match file.stamp {
            Some(stamp) => stamp,
            None => {
                FileStamp::of(&std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?)
            }
        };
        // Keyed by the path in the context; other files are hashed, not remembered.
        let key = self
            .context
            .as_deref()
            .and_then(|context| path.strip_prefix(context).ok())
            .map(Path::to_string_lossy);
        if let Some(key) = &key
            && let Some(digest) = self.stat().get(key, &stamp)
        {
            self.stats.files_unchanged.fetch_add(1, Ordering::Relaxed);
            return Ok(digest);
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut hasher = Hasher::new("sha256")?;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf).map_err(|e| Error::io(path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        let digest = hasher.finish();
        self.stats.files_hashed.fetch_add(1, Ordering::Relaxed);
        if let Some(key) = key {
            self.stat().insert(key.into_owned(), stamp, digest.clone());
        }
        Ok(digest)
    }

    /// The key of a layer: everything its tar holds, and how it is compressed.
    pub fn layer_key(
        &self,
        entries: &[Entry<'_>],
        epoch: Option<i64>,
        codec: Codec,
    ) -> Result<Digest> {
        use std::fmt::Write;
        let mut hasher = Hasher::new("sha256")?;
        hasher.update(format!("{LAYER_FORMAT}\n{}\n", codec.media_type()).as_bytes());
        // One line per entry, written into one reused buffer: warm builds key thousands.
        let mut line = String::new();
        for (path, node) in entries {
            line.clear();
            let mtime = epoch.map_or(node.mtime, |e| node.mtime.min(e));
            let _ = write!(line, "{path:?} ");
            let _ = match &node.kind {
                Kind::Dir => write!(line, "dir"),
                Kind::File => write!(line, "file"),
                Kind::Symlink(t) => write!(line, "symlink {t:?}"),
                Kind::Hardlink(t) => write!(line, "hardlink {t:?}"),
                Kind::Other(special) => write!(line, "other {special:?}"),
            };
            let _ = write!(
                line,
                " {:o} {} {} {mtime} {} ",
                node.mode, node.uid, node.gid, node.size
            );
            let _ = match &node.content {
                Content::None => Ok(()),
                Content::Local(p) => write!(line, "{}", self.file_digest(p)?),
                Content::Bytes(b) => write!(line, "{}", Digest::sha256_of(b)),
                Content::Layer { layer, path } => write!(line, "{layer}:{path:?}"),
            };
            line.push('\n');
            hasher.update(line.as_bytes());
        }
        Ok(hasher.finish())
    }

    /// Adds layers imported from a `--cache-from` reference; keys already known stay.
    pub fn import(&self, layers: impl IntoIterator<Item = (Digest, RemoteLayer)>) {
        let mut remote = self.remote.lock().expect("remote cache lock");
        for (key, layer) in layers {
            remote.entry(key).or_insert(layer);
        }
    }

    /// A layer stored under `key`: locally if its blob is still there, else imported.
    pub fn lookup(&self, key: &Digest) -> Option<Hit> {
        if !self.reuse {
            return None;
        }
        let hit = self.lookup_local(key).map(Hit::Local).or_else(|| {
            let remote = self.remote.lock().expect("remote cache lock");
            remote.get(key).map(|l| Hit::Remote {
                descriptor: l.descriptor.clone(),
                diff_id: l.diff_id.clone(),
                source: l.source.clone(),
            })
        })?;
        self.stats.layers_reused.fetch_add(1, Ordering::Relaxed);
        Some(hit)
    }

    fn lookup_local(&self, key: &Digest) -> Option<BuiltLayer> {
        let root = self.root.as_ref()?;
        let cached = CachedLayer::read(&root.join("layers").join(format!("{}.json", key.hex())))?;
        let path = cached.blob(root)?;
        crate::fsutil::touch(&path);
        Some(BuiltLayer {
            descriptor: cached.descriptor,
            diff_id: cached.diff_id,
            path,
        })
    }

    /// Records a layer just built (its blob already in [`Cache::blob_dir`]) under `key`.
    pub fn store(&self, key: &Digest, layer: &BuiltLayer) -> Result<()> {
        self.stats.layers_built.fetch_add(1, Ordering::Relaxed);
        let Some(root) = &self.root else {
            return Ok(());
        };
        let entry = CachedLayer {
            descriptor: layer.descriptor.clone(),
            diff_id: layer.diff_id.clone(),
        };
        write_cache_entry(
            &root.join("layers").join(format!("{}.json", key.hex())),
            &serde_json::to_vec(&entry).expect("cache entries serialise"),
        )
    }

    /// Saves the stat cache (a best effort: losing it only costs re-reading files).
    pub fn save(&self) {
        let Some(path) = self.stat_file.clone() else {
            return;
        };
        let mut stat = self.stat();
        if !stat.changed() {
            // Still in use: `cache prune` goes by modification time.
            crate::fsutil::touch(&path);
            return;
        }
        // The build is done with the stat cache: it is written while the image is pushed,
        // and dropping the cache waits for that.
        let stat = std::mem::take(&mut *stat);
        let old_format = self
            .root
            .as_ref()
            .map(|r| r.join("local").join("stat.v1.tsv"));
        let writer = std::thread::spawn(move || {
            let _ = write_cache_entry(&path, stat.to_text().as_bytes());
            // The one stat file earlier hoist builds kept for all contexts: never read now.
            if let Some(old) = old_format {
                let _ = std::fs::remove_file(old);
            }
        });
        *self.saving.lock().expect("saving lock") = Some(writer);
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        if let Some(writer) = self.saving.get_mut().ok().and_then(Option::take) {
            let _ = writer.join();
        }
    }
}
