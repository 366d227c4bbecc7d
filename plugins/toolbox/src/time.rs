//! Calendar arithmetic for `time_now`: Unix time to a civil date and time,
//! without a time-zone database (offsets are given in minutes).

/// A date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub millisecond: u32,
    /// 0 = Monday ... 6 = Sunday.
    pub weekday: u32,
}

const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

impl DateTime {
    /// The date and time `unix_millis` milliseconds after 1970-01-01T00:00Z,
    /// shifted by `offset_minutes`.
    pub fn from_unix_millis(unix_millis: i64, offset_minutes: i32) -> Self {
        let millis = unix_millis + i64::from(offset_minutes) * 60_000;
        let days = millis.div_euclid(86_400_000);
        let of_day = millis.rem_euclid(86_400_000);
        let (year, month, day) = civil_from_days(days);
        Self {
            year,
            month,
            day,
            hour: (of_day / 3_600_000) as u32,
            minute: (of_day / 60_000 % 60) as u32,
            second: (of_day / 1000 % 60) as u32,
            millisecond: (of_day % 1000) as u32,
            // 1970-01-01 was a Thursday (3).
            weekday: (days + 3).rem_euclid(7) as u32,
        }
    }

    /// The English name of the weekday.
    pub fn weekday_name(&self) -> &'static str {
        WEEKDAYS[self.weekday as usize]
    }

    /// RFC 3339 with milliseconds, `Z` for UTC or `+hh:mm` for an offset.
    pub fn rfc3339(&self, offset_minutes: i32) -> String {
        let zone = if offset_minutes == 0 {
            "Z".to_string()
        } else {
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let abs = offset_minutes.unsigned_abs();
            format!("{sign}{:02}:{:02}", abs / 60, abs % 60)
        };
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{zone}",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.millisecond
        )
    }
}

/// Year, month, day of the day `days` after 1970-01-01 in the proleptic
/// Gregorian calendar (the well-known era-based algorithm: eras of 400 years
/// starting on March 1st, so leap days fall at the end of a year).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        let epoch = DateTime::from_unix_millis(0, 0);
        assert_eq!(epoch.rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(epoch.weekday_name(), "Thursday");

        // 2024-02-29T12:34:56.789Z, a leap day and a Thursday.
        let leap = DateTime::from_unix_millis(1_709_210_096_789, 0);
        assert_eq!(leap.rfc3339(0), "2024-02-29T12:34:56.789Z");
        assert_eq!(leap.weekday_name(), "Thursday");

        // 2000-03-01 follows a leap day in a year divisible by 400.
        assert_eq!(
            DateTime::from_unix_millis(951_868_800_000, 0).rfc3339(0),
            "2000-03-01T00:00:00.000Z"
        );
        // Before the epoch.
        assert_eq!(
            DateTime::from_unix_millis(-1, 0).rfc3339(0),
            "1969-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn offsets_shift_the_civil_time() {
        let t = DateTime::from_unix_millis(1_709_210_096_789, -300);
        assert_eq!(t.rfc3339(-300), "2024-02-29T07:34:56.789-05:00");
        let t = DateTime::from_unix_millis(1_709_210_096_789, 690);
        assert_eq!(t.rfc3339(690), "2024-03-01T00:04:56.789+11:30");
        assert_eq!(t.weekday_name(), "Friday");
    }
}
