//! Build script: finds libsolv/libsolvext with pkg-config, generates the bindings with bindgen and
//! compiles the C wrappers bindgen writes for libsolv's `static inline` helpers.

use std::env;
use std::path::PathBuf;

/// Oldest libsolv release whose API the bindings and the safe wrapper rely on.
const MINIMUM_LIBSOLV_VERSION: &str = "0.7.20";

/// Functions, types and variables of libsolv whose names start with one of these prefixes.
const LOWERCASE_ALLOWLIST: &str = "(pool|repo|repodata|repowriter|solver|transaction|queue|map|solvable|selection|dataiterator|solv|testcase|evr)_.*";

/// Preprocessor constants (`#define`s) the safe wrapper needs.
const CONSTANT_ALLOWLIST: &str = "(DISTTYPE|SELECTION|SOLVER|SOLVER_TRANSACTION|TRANSACTION|REPO|SOLVID|EVRCMP|SEARCH|\
     POOL_FLAG|SOLV|TESTCASE|REL|ARCH|REPOKEY|SYSTEMSOLVABLE|ID|SOLVER_RULE|SOLVER_REASON)_?.*";

/// Base name of the generated C file (bindgen appends `.c`) and of the static library built from it.
const STATIC_WRAPPERS_NAME: &str = "libsolv_static_wrappers";

fn probe(package: &str) -> pkg_config::Library {
    pkg_config::Config::new().atleast_version(MINIMUM_LIBSOLV_VERSION).probe(package).unwrap_or_else(
        |error| {
            panic!(
                "could not find {package} >= {MINIMUM_LIBSOLV_VERSION} with pkg-config: {error}\n\
             Install the development packages: run `scripts/install-deps`, or on Debian/Ubuntu \
             `apt-get install libsolv-dev libsolvext-dev libclang-dev clang pkg-config`"
            )
        },
    )
}

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let header = manifest_dir.join("wrapper.h");
    println!("cargo:rerun-if-changed={}", header.display());

    // libsolvext first: it depends on libsolv, and the linker resolves left to right.
    let libraries = [probe("libsolvext"), probe("libsolv")];
    let include_paths: Vec<PathBuf> =
        libraries.iter().flat_map(|library| library.include_paths.iter().cloned()).collect();

    let wrappers_source = out_dir.join(STATIC_WRAPPERS_NAME);
    let bindings = bindgen::Builder::default()
        .header(header.to_string_lossy())
        .clang_args(include_paths.iter().map(|path| format!("-I{}", path.display())))
        .allowlist_function(LOWERCASE_ALLOWLIST)
        .allowlist_type(LOWERCASE_ALLOWLIST)
        .allowlist_type("(Pool|Repo|Repodata|Solvable|Solver|Transaction|Queue|Map|Id|Offset|Dataiterator|Datamatcher|Chksum|Reldep|Repowriter|Rule|SolverRuleinfo)")
        .allowlist_var(LOWERCASE_ALLOWLIST)
        .allowlist_var(CONSTANT_ALLOWLIST)
        .allowlist_item("solv_knownid")
        // Needed to close the `FILE *` streams that `solv_xfopen` returns.
        .allowlist_function("fclose")
        // Lets a stream read by one thread skip the lock `getc` takes for every byte.
        .allowlist_function("__fsetlocking")
        // Gives streams read whole a larger buffer than stdio's 4 KiB.
        .allowlist_function("setvbuf")
        .allowlist_var("_IOFBF")
        .allowlist_item("FSETLOCKING_.*")
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers_source)
        .derive_default(true)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen failed to generate the libsolv bindings");
    bindings.write_to_file(out_dir.join("bindings.rs")).expect("could not write bindings.rs to OUT_DIR");

    let mut build = cc::Build::new();
    build.file(wrappers_source.with_extension("c")).include(&manifest_dir).warnings(false);
    for path in &include_paths {
        build.include(path);
    }
    build.compile(STATIC_WRAPPERS_NAME);

    // The static wrappers call into libsolv, so repeat the shared libraries after them.
    for library in &libraries {
        for name in &library.libs {
            println!("cargo:rustc-link-lib=dylib={name}");
        }
    }
}
