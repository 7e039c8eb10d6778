//! Wire types of groups: what the admin page shows of each group, and the budgets a person's
//! composer and usage page warn about.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most characters in a group's name (and in an identity provider's group name linked to it).
pub const MAX_GROUP_NAME_CHARS: usize = 80;
/// Groups an admin may make: the page lists them all, and each reservation checks a person's.
pub const MAX_GROUPS: usize = 500;

/// One group, as the admin page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub id: Uuid,
    pub name: String,
    /// Shared by every member, on top of each one's own; `None`: no group limit.
    pub monthly_budget_usd: Option<f64>,
    /// The identity provider's group whose members belong here too (kept in step at sign-in).
    pub idp_group: Option<String>,
    /// The models members may use, by id; empty: every model.
    pub models: Vec<String>,
    pub members: Vec<GroupMember>,
    /// What was spent in the group this month (settled, and held by runs still going), by
    /// whoever was a member when each run began, in USD.
    pub month_cost_usd: f64,
}

/// A member of a group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupMember {
    pub user_id: String,
    pub username: String,
    /// Added by hand (removable here), or through the identity provider's group (removed there).
    pub by_hand: bool,
}

/// Which budget a warning or a total is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetScope {
    /// The person's own.
    Person,
    Group,
    /// An API key's.
    Key,
}

/// One budget a person falls under, and how much of it is spent this month.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BudgetUse {
    pub scope: BudgetScope,
    /// The group's or key's name; the person's username for their own.
    pub name: String,
    pub budget_usd: f64,
    pub spent_usd: f64,
}

impl BudgetUse {
    /// The highest warning threshold (80 or 90 %) the spending reached, if any.
    pub fn warning(&self) -> Option<u8> {
        // A budget of nothing refuses whatever has a price: nothing to warn of.
        if self.budget_usd <= 0.0 {
            return None;
        }
        let share = self.spent_usd / self.budget_usd;
        if share >= 0.9 {
            Some(90)
        } else if share >= 0.8 {
            Some(80)
        } else {
            None
        }
    }

    pub fn left_usd(&self) -> f64 {
        (self.budget_usd - self.spent_usd).max(0.0)
    }

    /// `The group Research has used 85 % of its $10.00 budget this month ($1.50 left).`, from
    /// 80 % on.
    pub fn warning_words(&self) -> Option<String> {
        use crate::format::{fixed, format_cost};
        self.warning()?;
        let share = (self.spent_usd / self.budget_usd * 100.0).floor();
        let (whose, its) = match self.scope {
            BudgetScope::Person => ("You have".to_owned(), "your"),
            BudgetScope::Group => (format!("The group {} has", self.name), "its"),
            BudgetScope::Key => (format!("The API key {} has", self.name), "its"),
        };
        Some(format!(
            "{whose} used {} % of {its} {} budget this month ({} left).",
            fixed(share, 0),
            format_cost(self.budget_usd),
            format_cost(self.left_usd())
        ))
    }
}

/// A group's month, as the usage page's totals and the admin's chart show it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupTotal {
    pub name: String,
    pub month_cost_usd: f64,
    pub budget_usd: Option<f64>,
}

/// The admin page's groups section.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdminGroups {
    pub groups: Vec<GroupView>,
    /// Every model of the catalog, by id: what a group may be limited to.
    pub models: Vec<String>,
    /// `2026-12`: the month the spending is of.
    pub month: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn use_of(scope: BudgetScope, spent: f64) -> BudgetUse {
        BudgetUse {
            scope,
            name: "Research".into(),
            budget_usd: 10.0,
            spent_usd: spent,
        }
    }

    #[test]
    fn warnings_start_at_eighty_percent_and_say_what_is_left() {
        assert_eq!(use_of(BudgetScope::Group, 7.9).warning_words(), None);
        assert_eq!(
            use_of(BudgetScope::Group, 8.5).warning_words().as_deref(),
            Some("The group Research has used 85 % of its $10.00 budget this month ($1.50 left).")
        );
        assert_eq!(use_of(BudgetScope::Person, 9.0).warning(), Some(90));
        assert_eq!(use_of(BudgetScope::Person, 8.0).warning(), Some(80));
        assert!(use_of(BudgetScope::Person, 12.0)
            .warning_words()
            .is_some_and(|w| w.starts_with("You have used 120 % of your")));
    }
}
