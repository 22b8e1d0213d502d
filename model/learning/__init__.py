"""Training-time code: LFW data, the teacher, distillation, evaluation, fine-tuning (imports core only)."""
