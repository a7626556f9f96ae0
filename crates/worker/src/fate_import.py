# fedflow's FATE import: turns a table registered on this party (a CSV file and its FATE
# upload meta) into a pyfate dataframe, as FATE-Flow's upload job does: the rows become a
# standalone table (key: the sample id, or a new one with extend_sid; value: the rest of the
# line), which FATE's own dataframe_transformer component reads into a dataframe.
#
#   python fate_import.py SPEC.json
#
# SPEC: {data_dir, csv, head, extend_sid, partitions, meta, raw_namespace, raw_name, execute: [argv
# of `component execute` for the transformer]}. The transformer runs in this same process.
import json
import os
import runpy
import secrets
import sys


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    from fate.arch.computing.backends.standalone import CSession
    from fate.arch.unify import URI

    meta = dict(spec["meta"])
    delimiter = meta.get("delimiter", ",")
    with open(spec["csv"]) as f:
        header = f.readline().rstrip("\r\n") if spec["head"] else None
        lines = [line.rstrip("\r\n") for line in f if line.strip()]
    if header is None:
        raise SystemExit("fedflow import: a table without a header line cannot be read by FATE")
    if spec["extend_sid"]:
        salt = secrets.token_bytes(16).hex()
        kvs = [(f"{salt}{i}", line) for i, line in enumerate(lines)]
        meta["header"] = f"extend_sid{delimiter}{header}"
        meta["sample_id_name"] = "extend_sid"
    else:
        kvs = [tuple(line.split(delimiter, 1)) for line in lines]
        meta["header"] = header
        meta.setdefault("sample_id_name", header.split(delimiter, 1)[0])
    session = CSession(session_id=f"fedflow_import_{spec['raw_name']}", data_dir=spec["data_dir"])
    table = session.parallelize(kvs, include_key=True, partition=max(1, int(spec["partitions"])))
    uri = f"standalone:///{spec['data_dir']}/{spec['raw_namespace']}/{spec['raw_name']}"
    table.save(URI.from_string(uri), schema={}, options={})
    session.stop()
    with open(spec["task_config"]) as f:
        config = json.load(f)
    config["input_artifacts"]["table"] = {
        "uri": uri,
        "type_name": "table",
        "metadata": {"metadata": {"schema": meta, "options": {"partitions": int(spec["partitions"])}}},
    }
    with open(spec["task_config"], "w") as f:
        json.dump(config, f)
    sys.argv = ["fate.components"] + spec["execute"]
    runpy.run_module("fate.components", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
