import type { KyselyPlugin, OperationNode, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';

/**
 * Tells this process about its own writes to a table, as each statement returns (a Kysely plugin on the
 * process's one Kysely instance, so writes inside any transaction count). Per-node caches use it to read
 * their own writes at once; other nodes' writes reach them by NOTIFY. Raw SQL (`sql\`…\``) is not parsed:
 * only the query builder's UPDATE and DELETE statements are seen.
 */
export interface WriteWatch {
  /** Calls `listener` after each UPDATE or DELETE on `table` that sets any column outside `ignoreColumns`. */
  watch(table: string, ignoreColumns: readonly string[], listener: () => void): () => void;
  plugin: KyselyPlugin;
}

interface Watcher {
  table: string;
  ignore: Set<string>;
  listener: () => void;
}

type Node = OperationNode & Record<string, any>;

const tableName = (node: Node | undefined): string | undefined => {
  if (!node) return undefined;
  if (node.kind === 'AliasNode') return tableName(node.node);
  if (node.kind === 'TableNode') return node.table?.identifier?.name;
  return undefined;
};

export function createWriteWatch(): WriteWatch {
  const watchers = new Set<Watcher>();
  const fired = new WeakMap<object, Watcher[]>();

  function matching(node: Node): Watcher[] {
    if (node.kind === 'UpdateQueryNode') {
      const table = tableName(node.table);
      const columns: string[] = (node.updates ?? []).map((u: Node) => u.column?.column?.name).filter(Boolean);
      return [...watchers].filter((w) => w.table === table && (columns.length === 0 || columns.some((c) => !w.ignore.has(c))));
    }
    if (node.kind === 'DeleteQueryNode') {
      const tables = (node.from?.froms ?? []).map((f: Node) => tableName(f));
      return [...watchers].filter((w) => tables.includes(w.table));
    }
    return [];
  }

  return {
    watch(table, ignoreColumns, listener) {
      const watcher = { table, ignore: new Set(ignoreColumns), listener };
      watchers.add(watcher);
      return () => void watchers.delete(watcher);
    },
    plugin: {
      transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
        if (watchers.size > 0) {
          const hits = matching(args.node as Node);
          if (hits.length > 0) fired.set(args.queryId, hits);
        }
        return args.node;
      },
      async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
        const hits = fired.get(args.queryId);
        if (hits) {
          fired.delete(args.queryId);
          for (const watcher of hits) watcher.listener();
        }
        return args.result;
      },
    },
  };
}
