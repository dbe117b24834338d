//! The first exchange on every cluster connection: both sides show their
//! protocol version and a fingerprint of their binary, and each proves it
//! knows the shared secret (an HMAC-SHA256 over both sides' random nonces,
//! in both directions), so a different build, another protocol version, a
//! wrong secret or a stranger is refused with an error naming which,
//! before any task or data moves.
//!
//! Frames are `[u32 length, little-endian][payload]`; a handshake message
//! is a tag byte then fixed fields, and the first message starts with the
//! magic `SPATE` and the version, so any later version can still read why
//! it was refused.

use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The version of the cluster protocol this build speaks.
pub(crate) const PROTOCOL_VERSION: u16 = 3;

/// The largest frame accepted before a peer has proved it knows the secret:
/// a bound on what a stranger can make us buffer.
pub(crate) const MAX_FRAME: usize = 64 << 20;

/// The largest frame an authenticated peer may send (a shuffle block, a
/// job's results).
pub(crate) const MAX_TRUSTED_FRAME: usize = u32::MAX as usize;

/// How long a handshake may take.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

const MAGIC: &[u8; 5] = b"SPATE";
const HELLO: u8 = 1;
const CHALLENGE: u8 = 2;
const PROOF: u8 = 3;
const WELCOME: u8 = 4;
const REFUSE: u8 = 5;

/// What a process shows of itself on a connection.
#[derive(Clone)]
pub(crate) struct Identity {
    /// SHA-256 of the program's binary: every process must run the same
    /// build (same program, same dataset ids).
    pub(crate) fingerprint: [u8; 32],
    pub(crate) secret: Vec<u8>,
    pub(crate) rank: u32,
    pub(crate) version: u16,
}

impl Identity {
    /// This process, running `rank` with `secret`.
    pub(crate) fn of_this_binary(rank: u32, secret: &str) -> Result<Identity> {
        Ok(Identity {
            fingerprint: binary_fingerprint()?,
            secret: secret.as_bytes().to_vec(),
            rank,
            version: PROTOCOL_VERSION,
        })
    }
}

/// SHA-256 of this process's executable, computed once.
pub(crate) fn binary_fingerprint() -> Result<[u8; 32]> {
    use sha2::Digest;
    static FINGERPRINT: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    if let Some(f) = FINGERPRINT.get() {
        return Ok(*f);
    }
    let exe = std::env::current_exe().map_err(|e| Error::io("the running executable", e))?;
    let bytes = std::fs::read(&exe).map_err(|e| Error::io(&exe, e))?;
    let digest: [u8; 32] = Sha256::digest(&bytes).into();
    Ok(*FINGERPRINT.get_or_init(|| digest))
}

fn refused(peer: &str, reason: impl Into<String>) -> Error {
    Error::Handshake {
        peer: peer.to_string(),
        reason: reason.into(),
    }
}

/// Writes one frame.
pub(crate) async fn write_frame(
    io: &mut (impl AsyncWrite + Unpin),
    payload: &[u8],
    peer: &str,
) -> Result<()> {
    let len = u32::try_from(payload.len()).ok().ok_or_else(|| {
        refused(
            peer,
            format!("a frame of {} bytes is too large", payload.len()),
        )
    })?;
    let io_err = |e| Error::io(format!("connection to {peer}"), e);
    io.write_all(&len.to_le_bytes()).await.map_err(io_err)?;
    io.write_all(payload).await.map_err(io_err)?;
    io.flush().await.map_err(io_err)
}

/// Reads one frame; a length past `max` is refused before anything is
/// buffered.
pub(crate) async fn read_frame(
    io: &mut (impl AsyncRead + Unpin),
    peer: &str,
    max: usize,
) -> Result<Vec<u8>> {
    let io_err = |e| Error::io(format!("connection to {peer}"), e);
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await.map_err(io_err)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > max {
        return Err(refused(
            peer,
            format!("not a Spate peer (announced a frame of {len} bytes)"),
        ));
    }
    let mut payload = vec![0u8; len];
    io.read_exact(&mut payload).await.map_err(io_err)?;
    Ok(payload)
}

fn mac(secret: &[u8], side: &[u8], first: &[u8; 32], second: &[u8; 32]) -> Hmac<Sha256> {
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(side);
    m.update(first);
    m.update(second);
    m
}

fn hello(me: &Identity, nonce: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(76);
    out.push(HELLO);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&me.version.to_le_bytes());
    out.extend_from_slice(&me.fingerprint);
    out.extend_from_slice(&me.rank.to_le_bytes());
    out.extend_from_slice(nonce);
    out
}

const WRONG_SECRET: &str = "wrong secret: the peer could not prove it knows the shared secret";

/// Tells the peer why it is refused (best effort: it may be gone) and
/// returns the same reason as this side's error.
async fn refuse(
    io: &mut (impl AsyncWrite + Unpin),
    peer: &str,
    reason: impl Into<String>,
) -> Error {
    let reason = reason.into();
    let mut msg = vec![REFUSE];
    msg.extend_from_slice(reason.as_bytes());
    let _ = write_frame(io, &msg, peer).await;
    refused(peer, reason)
}

/// The peer's refusal as an error, if `msg` is one.
fn check_refusal(msg: &[u8], peer: &str) -> Result<()> {
    match msg.split_first() {
        Some((&REFUSE, reason)) => Err(refused(
            peer,
            format!("refused by the peer: {}", String::from_utf8_lossy(reason)),
        )),
        _ => Ok(()),
    }
}

fn fixed<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at + N)?.try_into().ok()
}

fn short(f: &[u8; 32]) -> String {
    f[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The connecting side's handshake; returns the peer's rank.
pub(crate) async fn connect_handshake(
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    me: &Identity,
    peer: &str,
) -> Result<u32> {
    let run = async {
        let nonce: [u8; 32] = rand::random();
        write_frame(io, &hello(me, &nonce), peer).await?;
        let msg = read_frame(io, peer, MAX_FRAME).await?;
        check_refusal(&msg, peer)?;
        let (Some(&CHALLENGE), Some(rank), Some(their_nonce), Some(their_mac)) = (
            msg.first(),
            fixed::<4>(&msg, 1),
            fixed::<32>(&msg, 5),
            msg.get(37..69),
        ) else {
            return Err(refused(peer, "not a Spate peer (no challenge)"));
        };
        if mac(&me.secret, b"server", &nonce, &their_nonce)
            .verify_slice(their_mac)
            .is_err()
        {
            return Err(refuse(io, peer, WRONG_SECRET).await);
        }
        let mut proof = vec![PROOF];
        proof.extend_from_slice(
            &mac(&me.secret, b"client", &their_nonce, &nonce)
                .finalize()
                .into_bytes(),
        );
        write_frame(io, &proof, peer).await?;
        let msg = read_frame(io, peer, MAX_FRAME).await?;
        check_refusal(&msg, peer)?;
        if msg.first() != Some(&WELCOME) {
            return Err(refused(peer, "not a Spate peer (no welcome)"));
        }
        Ok(u32::from_le_bytes(rank))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| refused(peer, "the handshake timed out"))?
}

/// The accepting side's handshake; returns the peer's rank.
pub(crate) async fn accept_handshake(
    io: &mut (impl AsyncRead + AsyncWrite + Unpin),
    me: &Identity,
    peer: &str,
) -> Result<u32> {
    let run = async {
        let msg = read_frame(io, peer, MAX_FRAME).await?;
        if msg.first() != Some(&HELLO) || msg.get(1..6) != Some(MAGIC.as_slice()) {
            return Err(refused(peer, "not a Spate peer (no hello)"));
        }
        let version = fixed::<2>(&msg, 6).map(u16::from_le_bytes);
        if version != Some(me.version) {
            let reason = format!(
                "protocol version {} is not this side's version {}",
                version.map_or("?".to_string(), |v| v.to_string()),
                me.version
            );
            return Err(refuse(io, peer, reason).await);
        }
        let (Some(fingerprint), Some(rank), Some(their_nonce)) = (
            fixed::<32>(&msg, 8),
            fixed::<4>(&msg, 40),
            fixed::<32>(&msg, 44),
        ) else {
            return Err(refused(peer, "not a Spate peer (short hello)"));
        };
        if fingerprint != me.fingerprint {
            let reason = format!(
                "a different build of the program (binary {} here, {} there): every process must run the same binary",
                short(&me.fingerprint),
                short(&fingerprint)
            );
            return Err(refuse(io, peer, reason).await);
        }
        let nonce: [u8; 32] = rand::random();
        let mut challenge = vec![CHALLENGE];
        challenge.extend_from_slice(&me.rank.to_le_bytes());
        challenge.extend_from_slice(&nonce);
        challenge.extend_from_slice(
            &mac(&me.secret, b"server", &their_nonce, &nonce)
                .finalize()
                .into_bytes(),
        );
        write_frame(io, &challenge, peer).await?;
        let msg = read_frame(io, peer, MAX_FRAME).await?;
        check_refusal(&msg, peer)?;
        let proven = msg.first() == Some(&PROOF)
            && msg.get(1..).is_some_and(|m| {
                mac(&me.secret, b"client", &nonce, &their_nonce)
                    .verify_slice(m)
                    .is_ok()
            });
        if !proven {
            return Err(refuse(io, peer, WRONG_SECRET).await);
        }
        write_frame(io, &[WELCOME], peer).await?;
        Ok(u32::from_le_bytes(rank))
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, run)
        .await
        .map_err(|_| refused(peer, "the handshake timed out"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    fn identity(rank: u32, secret: &str) -> Identity {
        Identity {
            fingerprint: [7; 32],
            secret: secret.as_bytes().to_vec(),
            rank,
            version: PROTOCOL_VERSION,
        }
    }

    /// Runs one handshake over loopback: (server's result, client's result).
    fn shake(server: Identity, client: Identity) -> (Result<u32>, Result<u32>) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let accept = async {
                let (mut s, _) = listener.accept().await.unwrap();
                accept_handshake(&mut s, &server, "client").await
            };
            let connect = async {
                let mut c = TcpStream::connect(addr).await.unwrap();
                connect_handshake(&mut c, &client, "driver").await
            };
            tokio::join!(accept, connect)
        })
    }

    fn reason(r: Result<u32>) -> String {
        match r {
            Err(Error::Handshake { reason, .. }) => reason,
            other => panic!("expected a refused handshake, got {other:?}"),
        }
    }

    #[test]
    fn the_fingerprint_is_the_sha256_of_the_running_binary() {
        use sha2::Digest;
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let expected: [u8; 32] = Sha256::digest(&exe).into();
        assert_eq!(binary_fingerprint().unwrap(), expected);
        let me = Identity::of_this_binary(3, "s").unwrap();
        assert_eq!(
            (me.fingerprint, me.rank, me.version),
            (expected, 3, PROTOCOL_VERSION)
        );
    }

    #[test]
    fn peers_with_the_same_build_and_secret_learn_each_others_rank() {
        let (s, c) = shake(identity(0, "s3cret"), identity(2, "s3cret"));
        assert_eq!((s.unwrap(), c.unwrap()), (2, 0));
    }

    #[test]
    fn a_wrong_secret_is_refused_on_both_sides() {
        let (s, c) = shake(identity(0, "s3cret"), identity(1, "guess"));
        assert!(reason(c).contains("wrong secret"));
        assert!(reason(s).contains("wrong secret"));
    }

    #[test]
    fn a_different_build_is_refused_naming_both_fingerprints() {
        let mut other = identity(1, "s3cret");
        other.fingerprint = [9; 32];
        let (s, c) = shake(identity(0, "s3cret"), other);
        let (s, c) = (reason(s), reason(c));
        assert!(
            s.contains("different build")
                && s.contains("070707070707")
                && s.contains("090909090909"),
            "{s}"
        );
        assert!(
            c.contains("refused by the peer") && c.contains("different build"),
            "{c}"
        );
    }

    #[test]
    fn another_protocol_version_is_refused_naming_both_versions() {
        let mut newer = identity(1, "s3cret");
        newer.version = PROTOCOL_VERSION + 1;
        let (s, c) = shake(identity(0, "s3cret"), newer);
        let expected = format!(
            "protocol version {} is not this side's version {PROTOCOL_VERSION}",
            PROTOCOL_VERSION + 1
        );
        assert_eq!(reason(s), expected);
        assert!(reason(c).ends_with(&expected));
    }

    #[test]
    fn a_stranger_is_refused_without_being_buffered() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (http, huge) = rt.block_on(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let me = identity(0, "s3cret");
            let mut out = Vec::new();
            for junk in [
                &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
                &[0xff, 0xff, 0xff, 0x7f, 1],
            ] {
                let accept = async {
                    let (mut s, _) = listener.accept().await.unwrap();
                    accept_handshake(&mut s, &me, "stranger").await
                };
                let send = async {
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    c.write_all(junk).await.unwrap();
                    c
                };
                let (r, _conn) = tokio::join!(accept, send);
                out.push(r);
            }
            (out.remove(0), out.remove(0))
        });
        // "GET " read as a length is over 64 MiB: refused before reading it.
        assert!(reason(http).contains("not a Spate peer"));
        assert!(reason(huge).contains("not a Spate peer"));
    }
}
