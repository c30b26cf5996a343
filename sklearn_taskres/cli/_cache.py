"""``cache info|compact|clear DIR``: the on-disk feature store of ``--cache-dir``."""

import json

from ._common import EXIT_OK, PROG


def add_parser(commands, common):
    cache = commands.add_parser(
        "cache", parents=[common], help="show or clear an on-disk feature store",
        description="The feature store that --cache-dir (and cache_dir=) fills: 'info DIR' "
        "says what it holds, 'compact DIR' rewrites it as one shard with one copy of each "
        "vector, 'clear DIR' deletes it (and nothing else in DIR). Compact and clear while no "
        "process is writing to the store.",
    )
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="vectors, shards, files and bytes of a store")
    info.add_argument("directory", metavar="DIR", help="the --cache-dir of earlier runs")
    info.add_argument("--verify", action="store_true",
                      help="read every vector and check it against its checksum")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    compact = actions.add_parser("compact", help="rewrite a store as one shard")
    compact.add_argument("directory", metavar="DIR", help="the --cache-dir of earlier runs")
    clear = actions.add_parser("clear", help="delete a store")
    clear.add_argument("directory", metavar="DIR", help="the --cache-dir of earlier runs")
    clear.add_argument("--legacy", action="store_true",
                       help="only delete the files of the former one-file-per-vector layout")
    cache.set_defaults(handler=run)


def run(args):
    """``cache info|compact|clear DIR``: what a feature store holds; compact it; delete it."""
    from .._feature_store import clear_feature_store, compact_feature_store, feature_store_info

    if args.action == "compact":
        n_files = compact_feature_store(args.directory)
        info = feature_store_info(args.directory)
        print(f"replaced {n_files} file(s) by one shard of {info['n_vectors']} vector(s) in "
              f"{args.directory}")
        return EXIT_OK
    if args.action == "clear":
        n_files = clear_feature_store(args.directory, legacy_only=args.legacy)
        print(f"removed {n_files} file(s) from {args.directory}")
        return EXIT_OK
    info = feature_store_info(args.directory, verify=args.verify)
    if args.json:
        print(json.dumps(info, indent=1))
        return EXIT_OK
    print(f"{info['directory']}: {info['n_vectors']} vector(s) in {info['n_shards']} shard(s), "
          f"{info['n_files']} file(s), {info['n_bytes'] / 2**20:.1f} MiB")
    checked = "vectors and index entries" if args.verify else "index entries"
    print(f"damaged {checked}: {info['n_damaged']}")
    if info["n_legacy_files"]:
        print(f"former one-file-per-vector layout: {info['n_legacy_files']} file(s), "
              f"{info['n_legacy_bytes'] / 2**20:.1f} MiB (read when used; "
              f"'{PROG} cache clear --legacy DIR' removes them)")
    return EXIT_OK


