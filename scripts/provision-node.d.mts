/** Types of scripts/provision-node.mjs (plain JavaScript: it runs before `npm ci`). */
export interface NodeRuntime {
  version: string;
  /** The oldest release of the line that `engines` accepts. */
  minimum: string;
  /** sha512 SRI of the `node-linux-<arch>` package, per `process.arch`. */
  integrity: Partial<Record<string, string>>;
}
export declare const NODE_RUNTIMES: Record<'24' | '22', NodeRuntime>;
export declare const DEFAULT_LINE: '24';
export declare function satisfiesLine(version: string, line: string): boolean;
export declare function installNode(opts?: {
  line?: string;
  cacheDir?: string;
  log?: (msg: string) => void;
  integrity?: string;
}): string;
export declare function nodeFor(line?: string, log?: (msg: string) => void): string;
