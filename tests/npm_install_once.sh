# Sourced by the scripts that run npm packages in tests (tests/durable_streams.sh,
# tests/console.sh); defines one function. The caller holds a lock (flock) around the call, since
# tests run in parallel.
#
# npm_install_once SOURCE_DIR INSTALL_DIR
#   Installs the packages of SOURCE_DIR/package-lock.json, exactly (`npm ci`, install scripts not
#   run), into INSTALL_DIR, unless INSTALL_DIR already holds that lock file's install: once per
#   hash of package.json and package-lock.json.
npm_install_once() {
    npm_source=$1
    npm_target=$2
    npm_hash=$(cat "$npm_source/package.json" "$npm_source/package-lock.json" | sha256sum | cut -c1-16)
    if [ ! -f "$npm_target/.installed-$npm_hash" ]; then
        rm -rf "$npm_target"
        mkdir -p "$npm_target"
        cp "$npm_source/package.json" "$npm_source/package-lock.json" "$npm_target/"
        (cd "$npm_target" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
        touch "$npm_target/.installed-$npm_hash"
    fi
}
