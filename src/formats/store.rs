//! Object stores (the `object-store` feature, through the `object_store`
//! crate): the store a URL names (`s3://`, `gs://`, `az://`, `abfs://`,
//! `http(s)://`), with credentials and endpoints from the usual
//! environment variables (`AWS_*`, `GOOGLE_*`, `AZURE_*`); listing, sizes,
//! reads from an offset (ranged GETs), and whole-object uploads. Calls
//! block on an I/O runtime of this module's own, so tasks on the rayon
//! pool and the driver's thread can make them.

use crate::error::{Error, Result};
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, GetOptions, GetRange, ObjectStore, ObjectStoreExt, ObjectStoreScheme,
    PutPayload, RetryConfig, WriteMultipart,
};
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Uploads of at most this many bytes are one PUT; bigger ones are
/// multipart uploads of parts this big (S3 wants at least 5 MiB a part).
const PART: usize = 8 << 20;

/// Parts of one upload in flight at once.
const UPLOADS_IN_FLIGHT: usize = 4;

/// An object (or a prefix) a URL names: its store, its key, and the URL
/// as the user wrote it or as a listing made it (errors name it).
#[derive(Clone, Debug)]
pub(crate) struct Object {
    store: Arc<dyn ObjectStore>,
    key: Key,
    url: PathBuf,
    /// The URL up to its path (`s3://bucket`), to name the objects a
    /// listing finds.
    base: Arc<str>,
}

impl Object {
    /// The object `url` names. A URL this build cannot reach (a scheme
    /// it does not know, a malformed URL) is an invalid argument.
    pub(crate) fn parse(url: &Path) -> Result<Object> {
        let text = url.to_str().ok_or_else(|| {
            Error::InvalidArgument(format!("{} is not a valid URL", url.display()))
        })?;
        let parsed = url::Url::parse(text)
            .map_err(|e| Error::InvalidArgument(format!("{text} is not a valid URL: {e}")))?;
        let (scheme, path) = ObjectStoreScheme::parse(&parsed)
            .map_err(|e| Error::InvalidArgument(format!("{text} names no object store: {e}")))?;
        let key = Key::from_url_path(path)
            .map_err(|e| Error::InvalidArgument(format!("{text}: bad object key: {e}")))?;
        let base: Arc<str> = parsed[..url::Position::BeforePath].into();
        Ok(Object {
            store: store_for(&base, scheme, &parsed)?,
            key,
            url: url.to_path_buf(),
            base,
        })
    }

    /// The URL (errors name it).
    pub(crate) fn url(&self) -> &Path {
        &self.url
    }

    /// Another object of the same store, by key.
    fn sibling(&self, key: Key) -> Object {
        Object {
            store: self.store.clone(),
            url: name(&self.base, &key),
            key,
            base: self.base.clone(),
        }
    }

    /// The object `name` below this prefix (`dir/part-00000`).
    pub(crate) fn child(&self, name: &str) -> Object {
        self.sibling(self.key.clone().join(name))
    }

    /// The object's size in bytes.
    pub(crate) fn size(&self) -> Result<u64> {
        let meta = self.run(self.store.head(&self.key))?;
        Ok(meta.size)
    }

    /// The objects this URL names: the object itself, or the visible
    /// objects directly below it as a directory (names starting with `.`
    /// or `_` are skipped), or those whose keys match it as a glob; sorted
    /// by key.
    pub(crate) fn list(&self) -> Result<Vec<Object>> {
        let text = self.key.as_ref();
        let mut found = if let Some(glob) = text.find(['*', '?', '[']) {
            let pattern = glob::Pattern::new(text).map_err(|e| {
                Error::InvalidArgument(format!("bad glob {}: {e}", self.url.display()))
            })?;
            let literal = text[..glob].rsplit_once('/').map_or("", |(dir, _)| dir);
            let prefix = (!literal.is_empty()).then(|| Key::from(literal));
            let options = glob::MatchOptions {
                require_literal_separator: true,
                ..glob::MatchOptions::new()
            };
            let all: Vec<object_store::Result<object_store::ObjectMeta>> =
                block_on(&self.url, self.store.list(prefix.as_ref()).collect())?;
            let mut found = Vec::new();
            for meta in all {
                let meta = meta.map_err(|e| self.error(e))?;
                if pattern.matches_with(meta.location.as_ref(), options) {
                    found.push(self.sibling(meta.location));
                }
            }
            found
        } else {
            if !text.is_empty() && self.exists()? {
                return Ok(vec![self.clone()]);
            }
            let listing = self.run(self.store.list_with_delimiter(self.prefix()))?;
            if listing.objects.is_empty() && listing.common_prefixes.is_empty() {
                return Err(Error::io(
                    &self.url,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "no such object, and no objects below it",
                    ),
                ));
            }
            listing
                .objects
                .into_iter()
                .filter(|m| {
                    !m.location
                        .filename()
                        .is_some_and(|f| f.starts_with(['.', '_']))
                })
                .map(|m| self.sibling(m.location))
                .collect()
        };
        if found.is_empty() {
            return Err(Error::NoInput(self.url.display().to_string()));
        }
        found.sort_by(|a, b| a.key.as_ref().cmp(b.key.as_ref()));
        Ok(found)
    }

    /// Whether any object is at this URL or below it (an output directory
    /// that is already there).
    pub(crate) fn exists_or_has_children(&self) -> Result<bool> {
        let first = block_on(&self.url, async {
            let mut listing = self.store.list(self.prefix());
            listing.next().await
        })?;
        match first {
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(self.error(e)),
            None => self.exists(),
        }
    }

    /// Whether an object is at this key (`HEAD`).
    fn exists(&self) -> Result<bool> {
        match block_on(&self.url, self.store.head(&self.key))? {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The key as a listing prefix: none for a bucket's root.
    fn prefix(&self) -> Option<&Key> {
        (!self.key.as_ref().is_empty()).then_some(&self.key)
    }

    /// The object's bytes from `start` to its end, streamed by one ranged
    /// GET that stops when the reader is dropped.
    pub(crate) fn open_at(&self, start: u64) -> Result<ObjectReader> {
        let options = GetOptions {
            // A range from 0 would be refused on an empty object.
            range: (start > 0).then_some(GetRange::Offset(start)),
            ..GetOptions::default()
        };
        let got = self.run(self.store.get_opts(&self.key, options))?;
        Ok(ObjectReader {
            url: self.url.clone(),
            stream: got.into_stream(),
            chunk: Bytes::new(),
        })
    }

    /// The bytes `start..start + len` (one ranged GET; Parquet's reader
    /// asks for its footer and column chunks so).
    #[cfg_attr(not(feature = "parquet"), allow(dead_code))]
    pub(crate) fn get_range(&self, start: u64, len: usize) -> Result<Bytes> {
        let range = start..start + len as u64;
        self.run(self.store.get_range(&self.key, range))
    }

    /// The whole object.
    pub(crate) fn read_all(&self) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.open_at(0)?
            .read_to_end(&mut out)
            .map_err(|e| Error::io(&self.url, e))?;
        Ok(out)
    }

    /// Writes `bytes` as the object, in one PUT: readers see all of it or
    /// nothing.
    pub(crate) fn put(&self, bytes: Vec<u8>) -> Result<()> {
        self.run(self.store.put(&self.key, PutPayload::from(bytes)))?;
        Ok(())
    }

    /// Uploads the local file `from` as the object: one PUT when small, a
    /// multipart upload otherwise, which S3 shows only once it completes
    /// (and which is aborted on failure). Either way readers never see a
    /// partial object.
    pub(crate) fn upload(&self, from: &Path) -> Result<()> {
        let mut file = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
        let len = file.metadata().map_err(|e| Error::io(from, e))?.len();
        if len <= PART as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes)
                .map_err(|e| Error::io(from, e))?;
            return self.put(bytes);
        }
        block_on(&self.url, async {
            let upload = self
                .store
                .put_multipart(&self.key)
                .await
                .map_err(|e| self.error(e))?;
            let mut parts = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0; PART];
            let sent: Result<()> = async {
                loop {
                    let n = read_full(&mut file, &mut buf).map_err(|e| Error::io(from, e))?;
                    if n == 0 {
                        return Ok(());
                    }
                    parts
                        .wait_for_capacity(UPLOADS_IN_FLIGHT)
                        .await
                        .map_err(|e| self.error(e))?;
                    parts.write(&buf[..n]);
                }
            }
            .await;
            match sent {
                Ok(()) => parts.finish().await.map(drop).map_err(|e| self.error(e)),
                Err(e) => {
                    // The failure is what matters; an abort that fails too
                    // leaves an upload S3 never shows (a lifecycle rule
                    // reclaims it).
                    if let Err(abort) = parts.abort().await {
                        tracing::warn!(url = %self.url.display(), %abort, "aborting an upload failed");
                    }
                    Err(e)
                }
            }
        })?
    }

    /// Runs a request on the object store runtime; its error names this
    /// object.
    fn run<T: Send>(
        &self,
        request: impl std::future::Future<Output = object_store::Result<T>> + Send,
    ) -> Result<T> {
        block_on(&self.url, request)?.map_err(|e| self.error(e))
    }

    fn error(&self, e: object_store::Error) -> Error {
        store_error(&self.url, e)
    }
}

/// Reads until `buf` is full or the input ends.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The URL of `key` in the store `base` names; `%`, `?` and `#` are
/// escaped so that parsing the URL gives the key back.
fn name(base: &str, key: &Key) -> PathBuf {
    let mut url = String::with_capacity(base.len() + key.as_ref().len() + 1);
    url.push_str(base);
    url.push('/');
    for c in key.as_ref().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    PathBuf::from(url)
}

/// An object's bytes as a [`Read`]: the chunks of a GET's body, fetched as
/// the reader asks for them.
pub(crate) struct ObjectReader {
    url: PathBuf,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            let next = block_on(&self.url, self.stream.next()).map_err(std::io::Error::other)?;
            match next {
                None => return Ok(0),
                Some(Ok(chunk)) => self.chunk = chunk,
                // A dropped connection mid-body ends here: an error the
                // reader names the object in, and the task is retried.
                Some(Err(e)) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// The error for a failed request on `url`: a missing object (or bucket)
/// is "not found" like a missing file; a refused request (no permission,
/// bad credentials, an invalid key) will not succeed on a retry; anything
/// else (the server or network failing, after the store's own retries)
/// may.
fn store_error(url: &Path, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let transient = match &e {
        E::NotFound { .. } => {
            return Error::io(
                url,
                std::io::Error::new(std::io::ErrorKind::NotFound, e.to_string()),
            );
        }
        E::PermissionDenied { .. }
        | E::Unauthenticated { .. }
        | E::InvalidPath { .. }
        | E::NotSupported { .. }
        | E::NotImplemented { .. }
        | E::UnknownConfigurationKey { .. }
        | E::AlreadyExists { .. }
        | E::Precondition { .. } => false,
        _ => true,
    };
    Error::ObjectStore {
        url: url.to_path_buf(),
        reason: e.to_string(),
        transient,
    }
}

/// One client per store (scheme and bucket), so connections are reused.
fn store_for(
    base: &str,
    scheme: ObjectStoreScheme,
    url: &url::Url,
) -> Result<Arc<dyn ObjectStore>> {
    static STORES: OnceLock<parking_lot::Mutex<HashMap<String, Arc<dyn ObjectStore>>>> =
        OnceLock::new();
    let mut stores = STORES.get_or_init(Default::default).lock();
    if let Some(store) = stores.get(base) {
        return Ok(store.clone());
    }
    // The store retries a failed request a few times itself; the task is
    // retried after that, so a long wait here would only delay the error.
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(30),
    };
    let refused = |e: object_store::Error| {
        Error::InvalidArgument(format!("cannot use the object store of {url}: {e}"))
    };
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => Arc::new(
            object_store::aws::AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(refused)?,
        ),
        ObjectStoreScheme::GoogleCloudStorage => Arc::new(
            object_store::gcp::GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(refused)?,
        ),
        ObjectStoreScheme::MicrosoftAzure => Arc::new(
            object_store::azure::MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry)
                .build()
                .map_err(refused)?,
        ),
        ObjectStoreScheme::Http => Arc::new(
            object_store::http::HttpBuilder::new()
                .with_url(base)
                .with_retry(retry)
                // The URL says `http://`: that is what the user asked for.
                .with_client_options(
                    object_store::ClientOptions::new().with_allow_http(url.scheme() == "http"),
                )
                .build()
                .map_err(refused)?,
        ),
        other => {
            return Err(Error::InvalidArgument(format!(
                "{url}: {other:?} URLs are not read as object stores"
            )));
        }
    };
    stores.insert(base.to_owned(), store.clone());
    Ok(store)
}

/// Runs `f` to completion on the object store runtime (two I/O threads,
/// started on first use). From inside another tokio runtime, where
/// blocking is not allowed, it waits on a thread of its own.
fn block_on<F>(url: &Path, f: F) -> Result<F::Output>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    static IO: OnceLock<std::io::Result<tokio::runtime::Runtime>> = OnceLock::new();
    let rt = IO
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("spate-object-io")
                .enable_all()
                .build()
        })
        .as_ref()
        .map_err(|e| {
            let reason = format!("cannot start the object store I/O threads: {e}");
            Error::io(url, std::io::Error::new(e.kind(), reason))
        })?;
    Ok(if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| {
            s.spawn(|| rt.block_on(f))
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    } else {
        rt.block_on(f)
    })
}
