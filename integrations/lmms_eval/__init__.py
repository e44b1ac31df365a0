"""The ``semclip`` model for lmms-eval (install ``semclip[lmms]``).

    lmms-eval eval --model semclip \\
        --model_args vlm=llava_hf,pretrained=llava-hf/llava-1.5-7b-hf,scorer=runs/x/export,k=1 \\
        --tasks scienceqa_img,pope,mmbench_en_dev,mmstar,seedbench,gqa --log_samples

lmms-eval finds it through the entry point group ``lmms_eval.models``
(:func:`~semclip.integrations.lmms_eval.registration.manifest`). Modules: ``queries`` (the text
the scorer reads, from a task's document), ``selection`` (cut, score, pick; no lmms-eval
import), ``staging`` (hand the picks to the inner model), ``options`` (``--model_args``),
``model`` (the ``lmms`` classes).
"""
