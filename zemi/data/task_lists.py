"""The paper's task lists (Table 1), written only here: the training mixture and the held-out tasks."""

TRAINING_MIXTURE = ("cos_e_v1.11", "cosmos_qa", "dream", "qasc", "quartz", "sciq", "social_i_qa", "wiqa")
HELD_OUT_TASKS = (
    "openbookqa_main", "piqa", "super_glue_wic", "super_glue_cb", "super_glue_copa", "rotten_tomatoes", "hellaswag",
)
