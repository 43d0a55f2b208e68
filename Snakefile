# Root entry point: `snakemake --cores 8 results/table6.tex`. The workflow lives in workflow/.
include: "workflow/Snakefile"
