from snakemake.utils import min_version, validate

min_version("9.0")


# A --configfile on the command line replaces the embedded default instead of being merged
# into it: config/paper.yaml must not inherit the synthetic benchmarks of config/config.yaml.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


validate(config, "config/schema.yaml")


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/teacher.smk"
include: "rules/model.smk"
include: "rules/train.smk"
include: "rules/eval.smk"
include: "rules/report.smk"
include: "rules/student_negatives.smk"
include: "rules/publish.smk"


rule all:
    default_target: True
    input:
        all_targets,
        PUBLISH_TARGETS,
