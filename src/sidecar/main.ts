// The engine sidecar: a Node process that owns the native addon and answers JSON-RPC over its stdio.
process.stderr.write("repo-llama sidecar: starting\n");
