// .gitignore semantics over a whole tree: .git/info/exclude, then every .gitignore from the repository root
// down to the file's folder, each followed by a .repollamaignore of the same folder. A file further down
// the list takes precedence; inside one file the last matching line wins (the `ignore` package's job).
import ignore from "ignore";

interface Layer {
  /** Workspace-relative folder the rules belong to, "" or ending in "/". Only paths under it are tested. */
  base: string;
  /** Prepended to the path below `base`, for rules of folders above the workspace root (e.g. "packages/app/"). */
  prefix: string;
  rules: ignore.Ignore;
}

/**
 * The ignore layers that apply inside one folder. Immutable: entering a folder makes a new stack, so
 * sibling folders never see each other's rules.
 */
export class IgnoreStack {
  private constructor(private readonly layers: readonly Layer[]) {}

  static empty(): IgnoreStack {
    return new IgnoreStack([]);
  }

  /** Adds the lines of an ignore file found in `base` (workspace-relative, "" or ending in "/"). */
  withRules(text: string, base: string, prefix = ""): IgnoreStack {
    const rules = ignore({ allowRelativePaths: true }).add(text);
    let layer: Layer = { base, prefix, rules };
    // Rules of a folder above the workspace may exclude the workspace itself (a repository that ignores
    // node_modules/, opened at node_modules/typescript): the folder the user opened is never ignored.
    if (prefix) {
      let folder = "";
      for (const part of prefix.split("/").slice(0, -1)) {
        folder += `${part}/`;
        layer = reincluded(layer, folder);
      }
    }
    return new IgnoreStack([...this.layers, layer]);
  }

  /** Whether a workspace-relative path is ignored; its parent folders are known not to be. */
  isIgnored(relativePath: string, isDirectory: boolean): boolean {
    const path = isDirectory ? `${relativePath}/` : relativePath;
    for (let i = this.layers.length - 1; i >= 0; i--) {
      const layer = this.layers[i];
      if (!path.startsWith(layer.base)) continue;
      const verdict = layer.rules.test(layer.prefix + path.slice(layer.base.length));
      if (verdict.ignored) return true;
      if (verdict.unignored) return false;
    }
    return false;
  }

  /**
   * The stack for a folder the walk enters because it is not ignored. A lower layer may still exclude the
   * folder when a higher one re-included it (root .gitignore "build/", .repollamaignore "!build/"); the
   * `ignore` package would then report every file below as ignored through its parent, so that layer gets
   * a final rule re-including exactly this folder, which keeps its other rules ("*.log") working below it.
   */
  enter(folderPath: string): IgnoreStack {
    const path = `${folderPath}/`;
    let changed = false;
    const layers = this.layers.map((layer) => {
      if (!path.startsWith(layer.base)) return layer;
      const local = layer.prefix + path.slice(layer.base.length);
      if (!layer.rules.test(local).ignored) return layer;
      changed = true;
      return reincluded(layer, local);
    });
    return changed ? new IgnoreStack(layers) : this;
  }
}

function reincluded(layer: Layer, folder: string): Layer {
  if (!layer.rules.test(folder).ignored) return layer;
  const escaped = folder.replace(/[\\*?[\]!# ]/g, "\\$&");
  return { ...layer, rules: ignore({ allowRelativePaths: true }).add(layer.rules).add(`!/${escaped}`) };
}
