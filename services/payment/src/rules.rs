//! The business rules of the payment processor: when a charge is declined,
//! how much `support` may refund.

/// The business rules of the payment processor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// `PAYMENT_SUPPORT_REFUND_LIMIT_CENTS`, default 10000: the most a `support`
    /// user may refund of one charge in total; `admin` has no limit.
    pub support_refund_limit_cents: i64,
    /// `PAYMENT_DECLINE_ABOVE_CENTS`, default 50000: charges above this amount
    /// are declined (402), the demo's honest way to see a failing payment.
    pub decline_above_cents: i64,
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
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            support_refund_limit_cents: 10_000,
            decline_above_cents: 50_000,
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
}
