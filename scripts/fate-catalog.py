"""Writes the catalog of a pyfate installation as JSON: for every component, the roles it
serves and, per role and stage, its inputs and outputs (what `component artifact-type` answers
one combination at a time, asked here in one process). fedflow keeps the result for pyfate
2.2.0 as crates/core/src/fate/catalog-2.2.0.json.

    $(scripts/setup-fate.sh | tail -1) scripts/fate-catalog.py > crates/core/src/fate/catalog-2.2.0.json
"""
import json
import sys
from importlib import metadata

from fate.components.core import Role, Stage, list_components, load_component


def side(items, stage, role):
    return [
        {
            "name": a.name,
            "is_multi": a.is_multi,
            "optional": a.optional,
            "types": [t.get_type().type_name for t in a.types],
        }
        for a in items.values()
        if a.is_active_for(stage, role)
    ]


def main():
    listed = list_components()
    names = listed["buildin"] if isinstance(listed, dict) else listed
    components = {}
    for name in sorted(names):
        root = load_component(name)
        stages = [s.name for s in root.stage_components] or ["default"]
        roles = [str(r.name) for r in root.roles]
        io = {}
        for role_name in roles:
            role = Role.from_str(role_name)
            for stage_name in stages:
                stage = Stage.from_str(stage_name)
                cpn = load_component(name, stage=stage)._flatten_stages()
                arts = cpn.artifacts
                io.setdefault(role_name, {})[stage_name] = {
                    "inputs": {
                        "data": side(arts.data_inputs, stage, role),
                        "model": side(arts.model_inputs, stage, role),
                        "metric": [],
                    },
                    "outputs": {
                        "data": side(arts.data_outputs, stage, role),
                        "model": side(arts.model_outputs, stage, role),
                        "metric": side(arts.metric_outputs, stage, role),
                    },
                }
        components[name] = {"roles": roles, "io": io}
    json.dump(
        {"provider": "fate", "version": metadata.version("pyfate"), "components": components},
        sys.stdout,
        indent=1,
        sort_keys=True,
    )
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
