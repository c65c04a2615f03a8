//! Bad input gets one clear error, never a panic or a silent clamp.

use burn::prelude::*;
use sde_core::{
    AnySde, BackendNoise, DrawKind, LossConfig, NoiseSource, RecordedDraw, RecordedNoise, Sde,
    SdeError, SubVpSde, VeSde, VpSde, training_loss,
};
use sgm_testkit::{TestBackend, device};

type B = TestBackend;

#[test]
fn wrong_batch_size_is_an_error() {
    let x = Tensor::<B, 4>::zeros([3, 1, 2, 2], &device());
    let sde = VpSde::default();
    let err = sde.marginal_prob(x, &[0.5, 0.5]).unwrap_err();
    assert_eq!(
        err,
        SdeError::BatchMismatch {
            what: "marginal_prob",
            got: 2,
            batch: 3
        }
    );
    assert!(err.to_string().contains("2 time values for a batch of 3"));
}

#[test]
fn times_outside_zero_to_t_are_errors() {
    let x = Tensor::<B, 4>::zeros([2, 1, 2, 2], &device());
    let sde = VeSde::default();
    for bad in [-1e-3f32, 1.0001, f32::NAN, f32::INFINITY] {
        let err = sde.sde(x.clone(), &[0.5, bad]).unwrap_err();
        assert!(
            matches!(err, SdeError::TimeOutOfRange { .. }),
            "t = {bad}: {err:?}"
        );
    }
    // The end points are valid.
    assert!(sde.discretize(x, &[0.0, 1.0]).is_ok());
}

#[test]
fn invalid_parameters_are_errors() {
    assert!(matches!(
        VeSde::new(1.0, 0.5, 10),
        Err(SdeError::InvalidParameter {
            name: "sigma_max",
            ..
        })
    ));
    assert!(matches!(
        VeSde::new(0.0, 50.0, 10),
        Err(SdeError::InvalidParameter {
            name: "sigma_min",
            ..
        })
    ));
    assert!(matches!(
        VpSde::new(0.1, 20.0, 1),
        Err(SdeError::InvalidParameter { name: "N", .. })
    ));
    // An inflated N (e.g. from an untrusted config) is an error, not an aborting allocation.
    let huge = sde_core::MAX_STEPS + 1;
    for err in [
        VeSde::new(0.01, 50.0, huge).err(),
        VpSde::new(0.1, 20.0, huge).err(),
        SubVpSde::new(0.1, 20.0, huge).err(),
    ] {
        assert!(
            matches!(err, Some(SdeError::InvalidParameter { name: "N", .. })),
            "{err:?}"
        );
    }
    assert!(VeSde::new(0.01, 50.0, sde_core::MAX_STEPS).is_ok());
    assert!(matches!(
        SubVpSde::new(-0.1, 20.0, 10),
        Err(SdeError::InvalidParameter {
            name: "beta_min",
            ..
        })
    ));
}

#[test]
fn discrete_subvp_training_is_rejected_as_in_the_reference() {
    let sde: AnySde = SubVpSde::default().into();
    let model = |x: Tensor<B, 4>, _l: sde_core::Labels<B>| x;
    struct M<F>(F);
    impl<F: Fn(Tensor<B, 4>, sde_core::Labels<B>) -> Tensor<B, 4>> sde_core::ScoreModel<B> for M<F> {
        fn forward(&self, x: Tensor<B, 4>, l: sde_core::Labels<B>) -> Tensor<B, 4> {
            (self.0)(x, l)
        }
    }
    let cfg = LossConfig {
        continuous: false,
        ..LossConfig::default()
    };
    let x = Tensor::<B, 4>::zeros([2, 1, 2, 2], &device());
    let err = training_loss(&sde, &M(model), x.clone(), &cfg, &mut BackendNoise).unwrap_err();
    assert!(matches!(err, SdeError::Unsupported(_)), "{err:?}");
    let lw = LossConfig {
        continuous: false,
        likelihood_weighting: true,
        ..LossConfig::default()
    };
    let vp: AnySde = VpSde::default().into();
    let err = training_loss(&vp, &M(model), x, &lw, &mut BackendNoise).unwrap_err();
    assert!(matches!(err, SdeError::Unsupported(_)), "{err:?}");
}

#[test]
fn replay_mismatches_are_errors() {
    let draw = RecordedDraw {
        kind: DrawKind::Normal,
        shape: vec![2, 3],
        values: vec![0.0; 6],
        caller: "test".into(),
    };
    let mut noise = RecordedNoise::new([draw.clone()]);
    let err = NoiseSource::<B>::normal(&mut noise, [3, 2], &device()).unwrap_err();
    assert!(matches!(err, SdeError::Replay(_)), "{err:?}");
    let mut noise = RecordedNoise::new([draw]);
    let err = NoiseSource::<B>::uniform(&mut noise, 6, &device()).unwrap_err();
    assert!(err.to_string().contains("requested Uniform"), "{err}");
    let mut empty = RecordedNoise::new([]);
    let err = NoiseSource::<B>::normal(&mut empty, [1], &device()).unwrap_err();
    assert!(
        err.to_string().contains("all 0 recorded draws are used"),
        "{err}"
    );
}

#[test]
fn recorded_rademacher_is_plus_minus_one() {
    let draw = RecordedDraw {
        kind: DrawKind::Bernoulli01,
        shape: vec![4],
        values: vec![0.0, 1.0, 1.0, 0.0],
        caller: "test".into(),
    };
    let mut noise = RecordedNoise::new([draw]);
    let r: Tensor<B, 1> = noise.rademacher([4], &device()).unwrap();
    assert_eq!(
        r.into_data().to_vec::<f32>().unwrap(),
        vec![-1.0, 1.0, 1.0, -1.0]
    );
    assert!(noise.is_exhausted());
}
