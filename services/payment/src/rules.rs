//! The business rules of the payment processor: when a charge is declined,
//! how much `support` may refund, and when a refund needs a recent second
//! factor (step-up, RFC 9470).

use std::time::Duration;

use guard::AuthenticationRequirement;

/// The business rules of the payment processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `PAYMENT_SUPPORT_REFUND_LIMIT_CENTS`, default 10000: the most a `support`
    /// user may refund of one charge in total; `admin` has no limit.
    pub support_refund_limit_cents: i64,
    /// `PAYMENT_DECLINE_ABOVE_CENTS`, default 50000: charges above this amount
    /// are declined (402), the demo's honest way to see a failing payment.
    pub decline_above_cents: i64,
    /// `PAYMENT_STEP_UP_ABOVE_CENTS`, default 20000: a refund that takes a
    /// charge's refunded total above this needs a second factor shown within
    /// [`step_up_max_age`](Self::step_up_max_age), whatever the role.
    pub step_up_above_cents: i64,
    /// `PAYMENT_STEP_UP_MAX_AGE_SECS`, default 300.
    pub step_up_max_age: Duration,
}

impl Rules {
    /// Why the processor declines a charge of `amount_cents`, if it does.
    pub fn decline_reason(&self, amount_cents: i64) -> Option<String> {
        (amount_cents > self.decline_above_cents).then(|| {
            format!(
                "amount above the card limit of {} cents",
                self.decline_above_cents
            )
        })
    }

    /// Whether `support` may refund `amount_cents` more of a charge of which
    /// `refunded_cents` were already refunded (the limit is per charge, in
    /// total, so splitting a refund does not get round it).
    pub fn support_may_refund(&self, refunded_cents: i64, amount_cents: i64) -> bool {
        refunded_cents.saturating_add(amount_cents) <= self.support_refund_limit_cents
    }

    /// What refunding `amount_cents` more of a charge of which
    /// `refunded_cents` were already refunded demands of how the user signed
    /// in, if anything (counted in total, like the support limit).
    pub fn refund_authentication(
        &self,
        refunded_cents: i64,
        amount_cents: i64,
    ) -> Option<AuthenticationRequirement> {
        (refunded_cents.saturating_add(amount_cents) > self.step_up_above_cents)
            .then(|| AuthenticationRequirement::second_factor(Some(self.step_up_max_age)))
    }
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            support_refund_limit_cents: 10_000,
            decline_above_cents: 50_000,
            step_up_above_cents: 20_000,
            step_up_max_age: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rules;

    #[test]
    fn charges_above_the_threshold_are_declined_and_the_threshold_itself_is_not() {
        let rules = Rules::default();
        assert_eq!(rules.decline_reason(50_000), None);
        let reason = rules.decline_reason(50_001).unwrap();
        assert!(reason.contains("50000"), "{reason}");
    }

    #[test]
    fn the_support_limit_counts_what_was_already_refunded() {
        let rules = Rules::default();
        assert!(rules.support_may_refund(0, 10_000));
        assert!(!rules.support_may_refund(0, 10_001));
        assert!(rules.support_may_refund(6_000, 4_000));
        assert!(!rules.support_may_refund(6_000, 4_001));
        assert!(!rules.support_may_refund(i64::MAX, 1));
    }

    #[test]
    fn a_refund_needs_a_recent_second_factor_once_the_total_passes_the_threshold() {
        let rules = Rules::default();
        assert_eq!(rules.refund_authentication(0, 20_000), None);
        assert_eq!(rules.refund_authentication(19_000, 1_000), None);
        let need = rules.refund_authentication(19_000, 1_001).unwrap();
        assert_eq!(need.acr, guard::claims::acr::SECOND_FACTOR);
        assert_eq!(need.max_age, Some(std::time::Duration::from_secs(300)));
        assert!(rules.refund_authentication(i64::MAX, 1).is_some());
    }
}
