# Stage-2 demo schedule: iteration based; teacher and student both start from the stage-1
# checkpoint (`semi_train_cfg.init_student_from_teacher`), the teacher then follows the
# student by EMA from the first step.
# S4M trains a fresh student and copies it into the teacher at burn-in (25k of 368k
# iterations, configs/s4m/); a 150-iteration CPU run is too short for that: a fresh
# student is still weaker than its teacher when a copy would have to happen (a hard copy
# at 150 of 300 iterations collapsed the pseudo-labels, measured with an earlier demo
# model), so the demo starts the student where the teacher is, as mean-teacher methods do
# after their burn-in, and the EMA teacher improves with it.
max_iters = 150
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type='TeacherStudentValLoop')
test_cfg = dict(type='TestLoop')
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=15),
    dict(type='MultiStepLR', by_epoch=False, begin=0, end=max_iters,
         milestones=[int(max_iters * 0.75)], gamma=0.1),
]
optim_wrapper = dict(
    type='OptimWrapper',
    # Half the stage-1 rate: the student continues a trained detector.
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=10.0))
# No burn-in (the stage-1 run was it): EMA with momentum 0.99 from step 1, so the teacher of
# iteration 150 averages roughly the last 100 students (0.99 ** 100 = 0.37).
custom_hooks = [
    dict(type='TeacherScheduleHook', burn_in_iters=0, momentum=0.99),
]
